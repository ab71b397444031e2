import Foundation

/// Adam with PyTorch's semantics: weight decay is added to the gradient (L2, not AdamW), and
/// the update is lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε), in that order of operations.
public struct Adam: Sendable, Equatable {
    public struct Settings: Sendable, Equatable, Codable {
        public var learningRate: Float
        public var beta1: Float
        public var beta2: Float
        public var epsilon: Float
        public var weightDecay: Float

        public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
            self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
            self.epsilon = epsilon; self.weightDecay = weightDecay
        }
    }

    public let settings: Settings
    public internal(set) var step: Int = 0
    public internal(set) var firstMoment: [Float]
    public internal(set) var secondMoment: [Float]

    public init(parameterCount: Int, settings: Settings) {
        self.settings = settings
        firstMoment = [Float](repeating: 0, count: parameterCount)
        secondMoment = [Float](repeating: 0, count: parameterCount)
    }

    /// Restores an optimiser from its serialised moments.
    public init(settings: Settings, step: Int, firstMoment: [Float], secondMoment: [Float]) throws(EngineError) {
        guard firstMoment.count == secondMoment.count, step >= 0 else {
            throw .shapeMismatch("Adam moments differ in length or step is negative")
        }
        self.settings = settings; self.step = step
        self.firstMoment = firstMoment; self.secondMoment = secondMoment
    }

    public mutating func update(_ parameters: inout [Float], gradient: [Float]) {
        precondition(parameters.count == gradient.count && gradient.count == firstMoment.count)
        step += 1
        let s = settings
        let bias1 = 1 - pow(s.beta1, Float(step))
        let bias2Root = (1 - pow(s.beta2, Float(step))).squareRoot()
        let stepSize = s.learningRate / bias1
        parameters.withUnsafeMutableBufferPointer { p in
            gradient.withUnsafeBufferPointer { g in
                firstMoment.withUnsafeMutableBufferPointer { m in
                    secondMoment.withUnsafeMutableBufferPointer { v in
                        for i in 0..<p.count {
                            let grad = s.weightDecay != 0 ? g[i] + s.weightDecay * p[i] : g[i]
                            m[i] = s.beta1 * m[i] + (1 - s.beta1) * grad
                            v[i] = s.beta2 * v[i] + (1 - s.beta2) * grad * grad
                            let denominator = v[i].squareRoot() / bias2Root + s.epsilon
                            p[i] -= stepSize * (m[i] / denominator)
                        }
                    }
                }
            }
        }
    }
}

/// Scales `gradient` in place so its global L2 norm is at most `maxNorm` (PyTorch's
/// clip_grad_norm_: factor maxNorm / (norm + 1e-6) when the norm exceeds maxNorm). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradient: inout [Float], maxNorm: Float) -> Float {
    var sum = 0.0
    for g in gradient { sum += Double(g) * Double(g) }
    let norm = Float(sum.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for i in gradient.indices { gradient[i] *= factor }
    }
    return norm
}

@inline(__always) func pow(_ x: Float, _ y: Float) -> Float { Float(Foundation.pow(Double(x), Double(y))) }
