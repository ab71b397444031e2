import COpenBLAS

/// Dense Float32 matrix products, row-major. Everything the models multiply goes through here so
/// that the BLAS choice (and its thread count) is made in one place.
enum Linear {
    /// OpenBLAS is linked single-threaded per call: parallelism comes from jobs, never from BLAS,
    /// so results do not depend on how many threads a machine has.
    static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions = column counts.
    @inline(__always)
    static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configured
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta == 0 { c.update(repeating: 0, count: (m - 1) * ldc + n) }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Below this many multiply-adds a hand loop beats a BLAS call's overhead.
    static let blasThreshold = 2048

    /// y[m] = A[m×n] · x[n] (+ y when accumulating).
    @inline(__always)
    static func matVec(_ a: UnsafePointer<Float>, rows m: Int, cols n: Int,
                       _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if m * n >= blasThreshold {
            _ = configured
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), 1, a, Int32(n), x, 1, accumulate ? 1 : 0, y, 1)
            return
        }
        for i in 0..<m {
            let row = a + i * n
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            var j = 0
            while j + 4 <= n {
                s0 += row[j] * x[j]; s1 += row[j + 1] * x[j + 1]
                s2 += row[j + 2] * x[j + 2]; s3 += row[j + 3] * x[j + 3]
                j += 4
            }
            while j < n { s0 += row[j] * x[j]; j += 1 }
            let s = (s0 + s1) + (s2 + s3)
            y[i] = accumulate ? y[i] + s : s
        }
    }

    /// x[n] += A[m×n]ᵀ · g[m]
    @inline(__always)
    static func matTVecAccumulate(_ a: UnsafePointer<Float>, rows m: Int, cols n: Int,
                                  _ g: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>) {
        if m * n >= blasThreshold {
            _ = configured
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(m), Int32(n), 1, a, Int32(n), g, 1, 1, x, 1)
            return
        }
        for i in 0..<m {
            let gi = g[i]
            if gi == 0 { continue }
            let row = a + i * n
            for j in 0..<n { x[j] += gi * row[j] }
        }
    }

    /// A[m×n] += g[m] ⊗ x[n]
    @inline(__always)
    static func outerAccumulate(_ g: UnsafePointer<Float>, rows m: Int, _ x: UnsafePointer<Float>, cols n: Int,
                                into a: UnsafeMutablePointer<Float>) {
        if m * n >= blasThreshold {
            _ = configured
            cblas_sger(CblasRowMajor, Int32(m), Int32(n), 1, g, 1, x, 1, a, Int32(n))
            return
        }
        for i in 0..<m {
            let gi = g[i]
            if gi == 0 { continue }
            let row = a + i * n
            for j in 0..<n { row[j] += gi * x[j] }
        }
    }
}

/// The CPU kernels OpenBLAS chose when it loaded (for example "Haswell"); results are
/// bit-identical only between processes running the same kernels.
public var blasKernelName: String {
    guard let name = openblas_get_corename() else { return "unknown" }
    return String(cString: name)
}
