import Foundation

/// The Neural Architecture Comparator (NAC) of CTNAS: op embedding (scaled by the node's
/// width, see `GraphEncoding.widths`) → graph convolutions over the cell DAG (aggregate over
/// Aᵀ + I, residual, bias, ReLU) → mean over nodes → linear on the concatenated pair → sigmoid
/// = P(first cell beats second). With full widths it is the paper's NAC exactly.
///
/// Because the head is linear, a pair's logit splits into u(first) + v(second) + bias, so each
/// distinct cell of a batch is embedded once however many pairs it is in.
public struct ArchitectureComparator: Sendable {
    public struct Configuration: Sendable, Hashable, Codable {
        public var opCount: Int
        public var maxNodes: Int
        public var embeddingDimension: Int
        public var layers: Int

        /// The original code's NAS-Bench-101 comparator: 6 op ids (padding, input, three ops, output).
        public static let nasBench101 = Configuration(opCount: 6, maxNodes: 7, embeddingDimension: 128, layers: 4)

        public init(opCount: Int, maxNodes: Int, embeddingDimension: Int, layers: Int) {
            self.opCount = opCount; self.maxNodes = maxNodes
            self.embeddingDimension = embeddingDimension; self.layers = layers
        }

        public var parameterCount: Int {
            opCount * embeddingDimension + layers * (embeddingDimension * embeddingDimension + embeddingDimension)
                + 2 * embeddingDimension + 1
        }
    }

    public let configuration: Configuration
    public var parameters: [Float]

    /// PyTorch's initialisation: embedding N(0, 1); graph-convolution weight and bias U(±1/√D);
    /// linear head U(±1/√(2D)).
    public init(configuration: Configuration = .nasBench101, generator: inout SeededGenerator) {
        self.configuration = configuration
        let d = configuration.embeddingDimension
        var p = [Float]()
        p.reserveCapacity(configuration.parameterCount)
        for _ in 0..<(configuration.opCount * d) { p.append(generator.nextStandardNormal()) }
        let gcBound = 1 / Float(d).squareRoot()
        for _ in 0..<configuration.layers {
            for _ in 0..<(d * d + d) { p.append(generator.nextUniform(-gcBound, gcBound)) }
        }
        let fcBound = 1 / Float(2 * d).squareRoot()
        for _ in 0..<(2 * d + 1) { p.append(generator.nextUniform(-fcBound, fcBound)) }
        parameters = p
    }

    public init(configuration: Configuration = .nasBench101, parameters: [Float]) throws(EngineError) {
        guard parameters.count == configuration.parameterCount else {
            throw .shapeMismatch("comparator expects \(configuration.parameterCount) parameters, got \(parameters.count)")
        }
        self.configuration = configuration
        self.parameters = parameters
    }

    /// Whether `cell` fits this comparator; workers check cells from the wire before computing.
    public func accepts(_ cell: GraphEncoding) -> Bool {
        cell.nodeCount <= configuration.maxNodes && cell.nodeCount > 0
            && cell.ops.allSatisfy { Int($0) < configuration.opCount }
            && cell.adjacency.allSatisfy { $0 <= 1 }
            && cell.widths.count == cell.nodeCount && cell.widths.allSatisfy { (1...GraphEncoding.fullWidth).contains($0) }
    }

    // MARK: Inference

    /// Mean-pooled embedding of each cell, `cells.count × D` row-major.
    public func features(of cells: [GraphEncoding]) -> [Float] {
        var pass = ForwardPass(self, cells: cells, keepActivations: false)
        return pass.run()
    }

    /// The two halves of the head applied to features: `u` scores a cell in first position,
    /// `v` in second. logit(a, b) = u[a] + v[b] + bias.
    func headProjections(features: [Float], count: Int) -> (u: [Float], v: [Float]) {
        let d = configuration.embeddingDimension
        let head = layout.head
        var u = [Float](repeating: 0, count: count), v = [Float](repeating: 0, count: count)
        parameters.withUnsafeBufferPointer { p in
            features.withUnsafeBufferPointer { f in
                for c in 0..<count {
                    var su: Float = 0, sv: Float = 0
                    for k in 0..<d {
                        su += p[head + k] * f[c * d + k]
                        sv += p[head + d + k] * f[c * d + k]
                    }
                    u[c] = su; v[c] = sv
                }
            }
        }
        return (u, v)
    }

    var headBias: Float { parameters[layout.head + 2 * configuration.embeddingDimension] }

    /// P(cells[a] beats cells[b]) for each pair (a, b) of indices into `cells`.
    public func probabilities(cells: [GraphEncoding], pairs: [(Int, Int)]) -> [Float] {
        let f = features(of: cells)
        let (u, v) = headProjections(features: f, count: cells.count)
        let bias = headBias
        return pairs.map { sigmoid(u[$0.0] + v[$0.1] + bias) }
    }

    // MARK: Training

    /// Adds the gradient of the summed binary cross-entropy over `pairs` to `gradient` and
    /// returns the loss sum and how many pairs the comparator already orders right.
    public func accumulateGradient(cells: [GraphEncoding], pairs: [(Int, Int)], targets: [Float],
                                   into gradient: inout [Float]) -> (lossSum: Double, correct: Int) {
        precondition(pairs.count == targets.count && gradient.count == parameters.count)
        let d = configuration.embeddingDimension
        let n = cells.count
        var pass = ForwardPass(self, cells: cells, keepActivations: true)
        let f = pass.run()
        let (u, v) = headProjections(features: f, count: n)
        let bias = headBias
        let head = layout.head

        var lossSum = 0.0
        var correct = 0
        // dLoss/dlogit per cell, split by the side of the pair it sat on.
        var dU = [Float](repeating: 0, count: n), dV = [Float](repeating: 0, count: n)
        var dBias: Float = 0
        for (index, (a, b)) in pairs.enumerated() {
            let z = u[a] + v[b] + bias
            let p = sigmoid(z)
            let y = targets[index]
            lossSum += binaryCrossEntropy(logit: Double(z), target: Double(y))
            if (p > 0.5) == (y > 0.5) { correct += 1 }
            let g = p - y
            dU[a] += g; dV[b] += g; dBias += g
        }
        var dFeatures = [Float](repeating: 0, count: n * d)
        parameters.withUnsafeBufferPointer { p in
            gradient.withUnsafeMutableBufferPointer { grad in
                f.withUnsafeBufferPointer { feat in
                    dFeatures.withUnsafeMutableBufferPointer { df in
                        for c in 0..<n where dU[c] != 0 || dV[c] != 0 {
                            let gu = dU[c], gv = dV[c]
                            for k in 0..<d {
                                grad[head + k] += gu * feat[c * d + k]
                                grad[head + d + k] += gv * feat[c * d + k]
                                df[c * d + k] = gu * p[head + k] + gv * p[head + d + k]
                            }
                        }
                    }
                }
                grad[head + 2 * d] += dBias
            }
        }
        pass.backward(featureGradient: dFeatures, into: &gradient)
        return (lossSum, correct)
    }

    // MARK: Layout

    struct Layout {
        let embedding: Int
        let weights: [Int]
        let biases: [Int]
        let head: Int
    }

    var layout: Layout {
        let d = configuration.embeddingDimension
        var offset = configuration.opCount * d
        var w = [Int](), b = [Int]()
        for _ in 0..<configuration.layers {
            w.append(offset); offset += d * d
            b.append(offset); offset += d
        }
        return Layout(embedding: 0, weights: w, biases: b, head: offset)
    }
}

@inline(__always) func sigmoid(_ z: Float) -> Float { 1 / (1 + expf(-z)) }

/// −[y log σ(z) + (1 − y) log(1 − σ(z))], computed from the logit so it never takes log 0;
/// each log is clamped at −100 as PyTorch's BCELoss does.
@inline(__always) func binaryCrossEntropy(logit z: Double, target y: Double) -> Double {
    let logP = max(-softplus(-z), -100)
    let logQ = max(-softplus(z), -100)
    return -(y * logP + (1 - y) * logQ)
}

@inline(__always) func softplus(_ x: Double) -> Double {
    x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
}
