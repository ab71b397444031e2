/// A cell as the comparator sees it: a DAG of at most `maxNodes` nodes with an op id and a width
/// per node. Every search space maps its cells to this form, so the comparator, the wire format
/// and the workers never need to know which space a cell came from.
public struct GraphEncoding: Hashable, Sendable {
    /// Op id per node (ids are search-space specific; 0 is padding).
    public var ops: [UInt8]
    /// Row-major `ops.count × ops.count` 0/1 matrix; `adjacency[i * n + j] == 1` is an edge i → j.
    public var adjacency: [UInt8]
    /// Each node's share of its cell's channels in 128ths (1...128). An op's embedding is scaled
    /// by its width: a 3×3 convolution on a quarter of the channels is not a full one. All 128
    /// is the original NAC, which sees ops only.
    public var widths: [UInt8]

    public static let fullWidth: UInt8 = 128

    public init(ops: [UInt8], adjacency: [UInt8], widths: [UInt8]? = nil) {
        precondition(adjacency.count == ops.count * ops.count, "adjacency must be n×n")
        precondition(widths == nil || widths!.count == ops.count, "one width per node")
        self.ops = ops
        self.adjacency = adjacency
        self.widths = widths ?? [UInt8](repeating: Self.fullWidth, count: ops.count)
    }

    public var nodeCount: Int { ops.count }

    public func hasEdge(from i: Int, to j: Int) -> Bool { adjacency[i * ops.count + j] != 0 }

    /// The same cell with every node at full width: what the original NAC sees.
    public var withUniformWidths: GraphEncoding {
        var copy = self
        copy.widths = [UInt8](repeating: Self.fullWidth, count: ops.count)
        return copy
    }
}

/// What the comparator is told about a node besides its op: its width as the space defines it
/// (NAS-Bench-101 splits a module's channels among the vertices feeding its output), or full
/// width everywhere, which is the paper's NAC.
public enum NodeWidths: String, Codable, Sendable, CaseIterable {
    case channels, uniform
}

extension SearchSpace {
    public func encoding(ofRow row: Int, widths: NodeWidths) -> GraphEncoding {
        let cell = encoding(ofRow: row)
        return widths == .channels ? cell : cell.withUniformWidths
    }
}
