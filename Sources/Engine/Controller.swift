import Foundation

/// One choice the controller makes: which head scores the options, how many options there are,
/// and which embedding table turns the chosen option into the next LSTM input.
public struct Decision: Sendable, Equatable {
    public enum Scorer: Sendable, Equatable {
        /// A linear layer on the hidden state (index into `ControllerShape.headOutputs`).
        case head(Int)
        /// Additive attention over the first `candidates` rows of the key table.
        case attention(candidates: Int)
    }
    public var scorer: Scorer
    public var optionCount: Int
    /// logits → tanhConstant · tanh(logits / temperature), as the original controller does; no
    /// temperature leaves the logits undivided, and a tanh constant of 0 leaves them unsquashed.
    public var tanhConstant: Float
    public var temperature: Float? = nil
    /// Index into `ControllerShape.inputTables`: the chosen option's row becomes the next input.
    public var feedsTable: Int

    public init(scorer: Scorer, optionCount: Int, tanhConstant: Float, feedsTable: Int) {
        self.scorer = scorer; self.optionCount = optionCount
        self.tanhConstant = tanhConstant; self.feedsTable = feedsTable
    }
}

/// A search space's rules for what the controller decides next given the decisions so far.
public protocol DecisionGrammar: Sendable {
    var shape: ControllerShape { get }
    /// The decision after `prefix`, or nil when the sequence is complete.
    func decision(after prefix: [UInt16]) -> Decision?
}

/// Parameter shapes of the LSTM controller; the grammar picks them.
public struct ControllerShape: Sendable, Hashable, Codable {
    public var hiddenSize: Int
    /// Rows of each input embedding table.
    public var inputTables: [Int]
    /// Which input table attention scores against (its rows are the attention keys).
    public var attentionKeyTable: Int
    /// Outputs of each linear head.
    public var headOutputs: [Int]

    public init(hiddenSize: Int, inputTables: [Int], attentionKeyTable: Int, headOutputs: [Int]) {
        self.hiddenSize = hiddenSize; self.inputTables = inputTables
        self.attentionKeyTable = attentionKeyTable; self.headOutputs = headOutputs
    }
}

/// The CTNAS policy: an LSTM cell that makes each decision from its hidden state, with a
/// linear head or additive attention over node embeddings, trained by REINFORCE.
public struct Controller: Sendable {
    public let grammar: any DecisionGrammar
    public var parameters: [Float]
    let layout: ControllerLayout

    public struct Sample: Sendable, Equatable {
        public var sequence: [UInt16]
        public var logProbability: Double
        public var entropy: Double
    }

    /// Uniform ±0.1 initialisation, as the original controller's reset_parameters.
    public init(grammar: any DecisionGrammar, generator: inout SeededGenerator, initRange: Float = 0.1) {
        self.grammar = grammar
        layout = ControllerLayout(grammar.shape)
        parameters = (0..<layout.count).map { _ in generator.nextUniform(-initRange, initRange) }
    }

    public init(grammar: any DecisionGrammar, parameters: [Float]) throws(EngineError) {
        let layout = ControllerLayout(grammar.shape)
        guard parameters.count == layout.count else {
            throw .shapeMismatch("controller expects \(layout.count) parameters, got \(parameters.count)")
        }
        self.grammar = grammar; self.layout = layout; self.parameters = parameters
    }

    /// Samples a sequence with `generator`; `uniform` ignores the policy (the original code's
    /// force_uniform, used for the first baseline).
    public func sample(generator: inout SeededGenerator, uniform: Bool = false) -> Sample {
        var run = ControllerRun(self, recordTape: false)
        return run.forward({ decision, probabilities in
            if uniform { return generator.nextInt(below: decision.optionCount) }
            var u = generator.nextUnitDouble()
            for (k, p) in probabilities.enumerated() {
                u -= Double(p)
                if u < 0 { return k }
            }
            return probabilities.count - 1
        }, uniform: uniform)
    }

    /// Whether `sequence` is one this controller could have produced.
    public func isValid(_ sequence: [UInt16]) -> Bool {
        var prefix = [UInt16]()
        for action in sequence {
            guard let decision = grammar.decision(after: prefix), Int(action) < decision.optionCount else { return false }
            prefix.append(action)
        }
        return grammar.decision(after: prefix) == nil
    }

    /// Adds ∇[−advantage · log π(sequence) − entropyCoefficient · H] to `gradient` by replaying
    /// `sequence`; returns its log-probability and entropy. The sequence must be valid.
    public func accumulatePolicyGradient(sequence: [UInt16], advantage: Float, entropyCoefficient: Float,
                                         into gradient: inout [Float]) -> (logProbability: Double, entropy: Double) {
        precondition(gradient.count == parameters.count)
        var run = ControllerRun(self, recordTape: true)
        var position = 0
        let sample = run.forward({ _, _ in
            defer { position += 1 }
            return Int(sequence[position])
        }, uniform: false)
        precondition(sample.sequence == sequence, "sequence is not valid for this grammar")
        run.backward(advantage: advantage, entropyCoefficient: entropyCoefficient, into: &gradient)
        return (sample.logProbability, sample.entropy)
    }
}

/// Offsets of each parameter block inside the flat parameter vector.
struct ControllerLayout: Sendable {
    let hidden: Int
    let tables: [Int]          // offset of each input table
    let keyTable: Int
    let keyRows: Int
    let wIH: Int, wHH: Int, bIH: Int, bHH: Int
    let embAttn: Int, hidAttn: Int, vAttn: Int
    let heads: [(weight: Int, bias: Int, outputs: Int)]
    let count: Int

    init(_ shape: ControllerShape) {
        let h = shape.hiddenSize
        var offset = 0
        var tables = [Int]()
        for rows in shape.inputTables { tables.append(offset); offset += rows * h }
        wIH = offset; offset += 4 * h * h
        wHH = offset; offset += 4 * h * h
        bIH = offset; offset += 4 * h
        bHH = offset; offset += 4 * h
        embAttn = offset; offset += h * h
        hidAttn = offset; offset += h * h
        vAttn = offset; offset += h
        var heads = [(Int, Int, Int)]()
        for outputs in shape.headOutputs {
            let w = offset; offset += outputs * h
            let b = offset; offset += outputs
            heads.append((w, b, outputs))
        }
        self.heads = heads.map { (weight: $0.0, bias: $0.1, outputs: $0.2) }
        hidden = h
        self.tables = tables
        keyTable = tables[shape.attentionKeyTable]
        keyRows = shape.inputTables[shape.attentionKeyTable]
        count = offset
    }
}
