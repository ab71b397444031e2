/// One forward (and optionally backward) pass of the comparator over a set of distinct cells,
/// all nodes of all cells stacked into one `(cells·N) × D` matrix so each layer is one GEMM.
struct ForwardPass {
    let comparator: ArchitectureComparator
    let cellCount: Int
    let nodes: Int
    let d: Int
    /// Op id per node (padding nodes have op 0, as in the original code).
    var ops: [Int32]
    /// Bit j of `predecessors[c·N + i]` is set when cell c has an edge j → i.
    var predecessors: [UInt8]
    /// Each node's width as a fraction (1 for every node of a cell encoded without widths).
    var widths: [Float]
    /// Post-ReLU activations X₁ … X_L (X₀ is an embedding lookup and never stored).
    var activations: [[Float]] = []
    let keepActivations: Bool

    init(_ comparator: ArchitectureComparator, cells: [GraphEncoding], keepActivations: Bool) {
        self.comparator = comparator
        let config = comparator.configuration
        cellCount = cells.count
        nodes = config.maxNodes
        d = config.embeddingDimension
        self.keepActivations = keepActivations
        ops = [Int32](repeating: 0, count: cells.count * nodes)
        predecessors = [UInt8](repeating: 0, count: cells.count * nodes)
        widths = [Float](repeating: 1, count: cells.count * nodes)
        for (c, cell) in cells.enumerated() {
            let n = cell.nodeCount
            precondition(n <= nodes, "cell has more nodes than the comparator takes")
            for i in 0..<n {
                ops[c * nodes + i] = Int32(cell.ops[i])
                widths[c * nodes + i] = Float(cell.widths[i]) / Float(GraphEncoding.fullWidth)
                var mask: UInt8 = 0
                for j in 0..<n where cell.adjacency[j * n + i] != 0 { mask |= 1 << UInt8(j) }
                predecessors[c * nodes + i] = mask
            }
        }
    }

    /// Returns the mean-pooled features, `cellCount × D`.
    mutating func run() -> [Float] {
        let rows = cellCount * nodes
        let layers = comparator.configuration.layers
        let layout = comparator.layout
        let opCount = comparator.configuration.opCount
        var x = [Float](repeating: 0, count: rows * d)
        var s = [Float](repeating: 0, count: rows * d)
        let (d, nodes, cellCount) = (d, nodes, cellCount)
        comparator.parameters.withUnsafeBufferPointer { p in
            let base = p.baseAddress!
            // Layer 0: X₀ = width ⊙ E[op], so X₀ W₀ is a scaled row of (E W₀), computed once per op id.
            var table = [Float](repeating: 0, count: opCount * d)
            table.withUnsafeMutableBufferPointer { t in
                Linear.gemm(m: opCount, n: d, k: d, a: base + layout.embedding, lda: d,
                            b: base + layout.weights[0], ldb: d, beta: 0, c: t.baseAddress!, ldc: d)
            }
            table.withUnsafeBufferPointer { t in
                s.withUnsafeMutableBufferPointer { sp in
                    for r in 0..<rows {
                        let op = Int(ops[r])
                        let row = sp.baseAddress! + r * d, w = widths[r]
                        row.update(from: t.baseAddress! + op * d, count: d)
                        if w != 1 { for k in 0..<d { row[k] *= w } }
                    }
                }
            }
            x.withUnsafeMutableBufferPointer { xp in
                for r in 0..<rows {
                    let row = xp.baseAddress! + r * d, w = widths[r]
                    row.update(from: base + layout.embedding + Int(ops[r]) * d, count: d)
                    if w != 1 { for k in 0..<d { row[k] *= w } }
                }
            }
            for l in 0..<layers {
                if l > 0 {
                    x.withUnsafeBufferPointer { xp in
                        s.withUnsafeMutableBufferPointer { sp in
                            Linear.gemm(m: rows, n: d, k: d, a: xp.baseAddress!, lda: d,
                                        b: base + layout.weights[l], ldb: d, beta: 0, c: sp.baseAddress!, ldc: d)
                        }
                    }
                }
                // X ← ReLU(S + Σ_pred S + X + b), in place over X.
                s.withUnsafeBufferPointer { sp in
                    x.withUnsafeMutableBufferPointer { xp in
                        let bias = base + layout.biases[l]
                        for c in 0..<cellCount {
                            for i in 0..<nodes {
                                let r = c * nodes + i
                                let out = xp.baseAddress! + r * d
                                let own = sp.baseAddress! + r * d
                                for k in 0..<d { out[k] += own[k] + bias[k] }
                                var mask = predecessors[r]
                                while mask != 0 {
                                    let j = mask.trailingZeroBitCount
                                    mask &= mask - 1
                                    let other = sp.baseAddress! + (c * nodes + j) * d
                                    for k in 0..<d { out[k] += other[k] }
                                }
                                for k in 0..<d { out[k] = max(out[k], 0) }
                            }
                        }
                    }
                }
                if keepActivations { activations.append(x) }
            }
        }
        var features = [Float](repeating: 0, count: cellCount * d)
        let scale = 1 / Float(nodes)
        x.withUnsafeBufferPointer { xp in
            features.withUnsafeMutableBufferPointer { fp in
                for c in 0..<cellCount {
                    let f = fp.baseAddress! + c * d
                    for i in 0..<nodes {
                        let row = xp.baseAddress! + (c * nodes + i) * d
                        for k in 0..<d { f[k] += row[k] }
                    }
                    for k in 0..<d { f[k] *= scale }
                }
            }
        }
        return features
    }

    /// Backpropagates dLoss/dFeatures (`cellCount × D`) through the graph convolutions and the
    /// embedding, adding into `gradient` (laid out as the comparator's parameters).
    func backward(featureGradient: [Float], into gradient: inout [Float]) {
        precondition(keepActivations && activations.count == comparator.configuration.layers)
        let rows = cellCount * nodes
        let layers = comparator.configuration.layers
        let layout = comparator.layout
        let opCount = comparator.configuration.opCount
        let (d, nodes, cellCount) = (d, nodes, cellCount)
        // dX_L: the mean spreads each feature's gradient evenly over the nodes.
        var dx = [Float](repeating: 0, count: rows * d)
        let scale = 1 / Float(nodes)
        featureGradient.withUnsafeBufferPointer { fg in
            dx.withUnsafeMutableBufferPointer { dxp in
                for c in 0..<cellCount {
                    let src = fg.baseAddress! + c * d
                    for i in 0..<nodes {
                        let dst = dxp.baseAddress! + (c * nodes + i) * d
                        for k in 0..<d { dst[k] = src[k] * scale }
                    }
                }
            }
        }
        var ds = [Float](repeating: 0, count: rows * d)
        comparator.parameters.withUnsafeBufferPointer { p in
            let base = p.baseAddress!
            gradient.withUnsafeMutableBufferPointer { g in
                let gbase = g.baseAddress!
                for l in stride(from: layers - 1, through: 0, by: -1) {
                    // dY = dX ⊙ [Y > 0], written over dX; dS = (A + I) dY.
                    activations[l].withUnsafeBufferPointer { xp in
                        dx.withUnsafeMutableBufferPointer { dxp in
                            let dBias = gbase + layout.biases[l]
                            for r in 0..<rows {
                                let out = xp.baseAddress! + r * d
                                let dy = dxp.baseAddress! + r * d
                                for k in 0..<d {
                                    let v = out[k] > 0 ? dy[k] : 0
                                    dy[k] = v
                                    dBias[k] += v
                                }
                            }
                        }
                    }
                    dx.withUnsafeBufferPointer { dyp in
                        ds.withUnsafeMutableBufferPointer { dsp in
                            dsp.baseAddress!.update(from: dyp.baseAddress!, count: rows * d)
                            for c in 0..<cellCount {
                                for i in 0..<nodes {
                                    var mask = predecessors[c * nodes + i]
                                    let src = dyp.baseAddress! + (c * nodes + i) * d
                                    while mask != 0 {
                                        let j = mask.trailingZeroBitCount
                                        mask &= mask - 1
                                        let dst = dsp.baseAddress! + (c * nodes + j) * d
                                        for k in 0..<d { dst[k] += src[k] }
                                    }
                                }
                            }
                        }
                    }
                    if l > 0 {
                        // dW_l += X_lᵀ dS;  dX_l = dY (residual) + dS W_lᵀ.
                        activations[l - 1].withUnsafeBufferPointer { xp in
                            ds.withUnsafeBufferPointer { dsp in
                                Linear.gemm(transA: true, m: d, n: d, k: rows, a: xp.baseAddress!, lda: d,
                                            b: dsp.baseAddress!, ldb: d, beta: 1, c: gbase + layout.weights[l], ldc: d)
                                dx.withUnsafeMutableBufferPointer { dxp in
                                    Linear.gemm(transB: true, m: rows, n: d, k: d, a: dsp.baseAddress!, lda: d,
                                                b: base + layout.weights[l], ldb: d, beta: 1, c: dxp.baseAddress!, ldc: d)
                                }
                            }
                        }
                    } else {
                        // Layer 0 input is a scaled embedding lookup: group width-weighted node gradients by op id.
                        var groupedS = [Float](repeating: 0, count: opCount * d)
                        var groupedY = [Float](repeating: 0, count: opCount * d)
                        ds.withUnsafeBufferPointer { dsp in
                            dx.withUnsafeBufferPointer { dyp in
                                for r in 0..<rows {
                                    let op = Int(ops[r])
                                    let s = dsp.baseAddress! + r * d, y = dyp.baseAddress! + r * d
                                    let w = widths[r]
                                    groupedS.withUnsafeMutableBufferPointer { gs in
                                        let dst = gs.baseAddress! + op * d
                                        for k in 0..<d { dst[k] += w * s[k] }
                                    }
                                    groupedY.withUnsafeMutableBufferPointer { gy in
                                        let dst = gy.baseAddress! + op * d
                                        for k in 0..<d { dst[k] += w * y[k] }
                                    }
                                }
                            }
                        }
                        groupedS.withUnsafeBufferPointer { gs in
                            // dW₀ += Eᵀ G;  dE += G W₀ᵀ + grouped residual.
                            Linear.gemm(transA: true, m: d, n: d, k: opCount, a: base + layout.embedding, lda: d,
                                        b: gs.baseAddress!, ldb: d, beta: 1, c: gbase + layout.weights[0], ldc: d)
                            Linear.gemm(transB: true, m: opCount, n: d, k: d, a: gs.baseAddress!, lda: d,
                                        b: base + layout.weights[0], ldb: d, beta: 1, c: gbase + layout.embedding, ldc: d)
                        }
                        for k in 0..<(opCount * d) { g[layout.embedding + k] += groupedY[k] }
                    }
                }
            }
        }
    }
}
