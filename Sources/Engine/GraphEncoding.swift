/// A cell as the comparator sees it: a DAG of at most `maxNodes` nodes with an op id per node.
/// Every search space maps its cells to this form, so the comparator, the wire format and the
/// workers never need to know which space a cell came from.
public struct GraphEncoding: Hashable, Sendable {
    /// Op id per node (ids are search-space specific; 0 is padding).
    public var ops: [UInt8]
    /// Row-major `ops.count × ops.count` 0/1 matrix; `adjacency[i * n + j] == 1` is an edge i → j.
    public var adjacency: [UInt8]

    public init(ops: [UInt8], adjacency: [UInt8]) {
        precondition(adjacency.count == ops.count * ops.count, "adjacency must be n×n")
        self.ops = ops
        self.adjacency = adjacency
    }

    public var nodeCount: Int { ops.count }

    public func hasEdge(from i: Int, to j: Int) -> Bool { adjacency[i * ops.count + j] != 0 }
}
