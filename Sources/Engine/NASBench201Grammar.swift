/// The controller's decisions for NAS-Bench-201: the op of each of the cell's 6 edges, in the
/// architecture string's order, each scored by one linear head over the 5 ops and fed back
/// through an op embedding table. Like the op decisions of the NAS-Bench-101 controller, the
/// logits are squashed with tanhConstant / opTanhReduce (1.5 / 2.5).
public struct NASBench201Grammar: DecisionGrammar {
    public static let decisionCount = NASBench201Cell.edgeCount
    public static let operationCount = NASBench201Op.allCases.count
    public var hiddenSize: Int
    public var tanhConstant: Float
    public var opTanhReduce: Float

    public init(hiddenSize: Int = 64, tanhConstant: Float = 1.5, opTanhReduce: Float = 2.5) {
        self.hiddenSize = hiddenSize; self.tanhConstant = tanhConstant; self.opTanhReduce = opTanhReduce
    }

    /// One input table (the op embeddings) and one head. Attention is never used; the key table
    /// is the op table only because the shape must name a valid one.
    public var shape: ControllerShape {
        ControllerShape(hiddenSize: hiddenSize, inputTables: [Self.operationCount],
                        attentionKeyTable: 0, headOutputs: [Self.operationCount])
    }

    public func decision(after prefix: [UInt16]) -> Decision? {
        guard prefix.count < Self.decisionCount else { return nil }
        return Decision(scorer: .head(0), optionCount: Self.operationCount,
                        tanhConstant: tanhConstant / opTanhReduce, feedsTable: 0)
    }

    /// The cell a complete sequence builds: choice k is the op of edge k (`NASBench201Op` order).
    /// Nil when the sequence has the wrong length or a choice out of range.
    public static func cell(forSequence sequence: [UInt16]) -> NASBench201Cell? {
        guard sequence.count == decisionCount else { return nil }
        var ops = [NASBench201Op]()
        for choice in sequence {
            guard choice <= UInt8.max, let op = NASBench201Op(rawValue: UInt8(choice)) else { return nil }
            ops.append(op)
        }
        return NASBench201Cell(ops: ops)
    }

    /// The sequence that builds `cell`.
    public static func sequence(for cell: NASBench201Cell) -> [UInt16] { cell.ops.map { UInt16($0.rawValue) } }
}
