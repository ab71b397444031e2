import Foundation
import Engine

/// OpenBLAS picks its kernels for the CPU when it loads, and kernels for different CPUs add in
/// different orders. The same search on an AVX-512 machine and on an AVX2 machine drifts apart
/// after a few thousand updates, and a cluster mixing the two would depend on which worker ran
/// which shard. So every ctnas process on an x86-64 CPU with AVX2 and FMA runs OpenBLAS's Haswell
/// kernels. OpenBLAS reads OPENBLAS_CORETYPE before `main` runs, so the process re-executes
/// itself once with it set. A value already in the environment is kept: the user's choice.
enum KernelPinning {
    static let variable = "OPENBLAS_CORETYPE"
    static let coreType = "Haswell"

    static func pinOrReexecute() {
        guard getenv(variable) == nil, cpuRunsHaswellKernels() else { return }
        setenv(variable, coreType, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when exec failed: run on with the CPU's own kernels, and say so.
        FileHandle.standardError.write(Data("ctnas: could not restart with \(variable)=\(coreType) (\(String(cString: strerror(errno)))); running with OpenBLAS's \(blasKernelName) kernels, so results may differ from other machines\n".utf8))
    }

    static func cpuRunsHaswellKernels() -> Bool {
        #if arch(x86_64) && os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let set = Set(flags.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }))
        return set.contains("avx2") && set.contains("fma")
        #else
        return false
        #endif
    }
}
