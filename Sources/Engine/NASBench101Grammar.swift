/// The decisions of the original `NASBenchController`: how many intermediate nodes (1…5);
/// for each node a predecessor (attention over earlier nodes) and an op; the output node's
/// predecessor; then both ends of each remaining edge up to nine (attention over all nodes).
public struct NASBench101Grammar: DecisionGrammar {
    public static let maxIntermediateNodes = 5
    public static let operationCount = 3
    public var hiddenSize: Int
    public var tanhConstant: Float
    public var opTanhReduce: Float
    public var temperature: Float?

    public init(hiddenSize: Int = 64, tanhConstant: Float = 1.5, opTanhReduce: Float = 2.5, temperature: Float? = nil) {
        self.hiddenSize = hiddenSize; self.tanhConstant = tanhConstant; self.opTanhReduce = opTanhReduce
        self.temperature = temperature
    }

    enum Table { static let nodeCount = 0, node = 1, op = 2 }
    enum Head { static let nodeCount = 0, op = 1 }

    public var shape: ControllerShape {
        let n = Self.maxIntermediateNodes
        return ControllerShape(hiddenSize: hiddenSize, inputTables: [n, n + 2, Self.operationCount],
                               attentionKeyTable: Table.node, headOutputs: [n, Self.operationCount])
    }

    public func decision(after prefix: [UInt16]) -> Decision? {
        guard var d = rawDecision(after: prefix) else { return nil }
        d.temperature = temperature
        return d
    }

    func rawDecision(after prefix: [UInt16]) -> Decision? {
        let reduced = tanhConstant / opTanhReduce
        guard let first = prefix.first else {
            return Decision(scorer: .head(Head.nodeCount), optionCount: Self.maxIntermediateNodes,
                            tanhConstant: reduced, feedsTable: Table.nodeCount)
        }
        let n = Int(first) + 1
        let t = prefix.count - 1
        if t < 2 * n + 1 {
            if t % 2 == 0 {
                return Decision(scorer: .attention(candidates: t / 2 + 1), optionCount: t / 2 + 1,
                                tanhConstant: tanhConstant, feedsTable: Table.node)
            }
            return Decision(scorer: .head(Head.op), optionCount: Self.operationCount,
                            tanhConstant: reduced, feedsTable: Table.op)
        }
        if t < 2 * n + 1 + 2 * (NASBench101Cell.maxEdges - n - 1) {
            return Decision(scorer: .attention(candidates: n + 2), optionCount: n + 2,
                            tanhConstant: tanhConstant, feedsTable: Table.node)
        }
        return nil
    }
}
