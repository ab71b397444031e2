/// An operation on a NAS-Bench-201 edge, in the benchmark's own order (its `op_names`), which is
/// also the order of the controller's choices.
public enum NASBench201Op: UInt8, CaseIterable, Sendable, Codable {
    case none = 0
    case skipConnect = 1
    case conv1x1 = 2
    case conv3x3 = 3
    case avgPool3x3 = 4

    /// The name the architecture strings use.
    public var name: String {
        switch self {
        case .none: return "none"
        case .skipConnect: return "skip_connect"
        case .conv1x1: return "nor_conv_1x1"
        case .conv3x3: return "nor_conv_3x3"
        case .avgPool3x3: return "avg_pool_3x3"
        }
    }

    public init?(name: some StringProtocol) {
        guard let op = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = op
    }

    /// The op's id in the comparator encoding: 0 is padding, 1 input, 2…6 these ops, 7 output.
    public var comparatorID: UInt8 { rawValue + 2 }
}

/// A NAS-Bench-201 cell: 4 nodes (0 the input, 3 the output), every node j summing an op
/// applied to each earlier node i, so 6 edges, each carrying one of 5 ops: 5⁶ = 15,625 cells.
public struct NASBench201Cell: Hashable, Sendable, CustomStringConvertible {
    public static let nodeCount = 4
    public static let edgeCount = 6
    /// The edges in the architecture string's order: 1←0; 2←0, 2←1; 3←0, 3←1, 3←2.
    public static let edges: [(from: Int, to: Int)] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    /// 5⁶.
    public static let cellCount = 15_625

    /// The op on each edge, in the order of `edges`.
    public let ops: [NASBench201Op]

    public init(ops: [NASBench201Op]) {
        precondition(ops.count == Self.edgeCount, "a NAS-Bench-201 cell has \(Self.edgeCount) edge ops, got \(ops.count)")
        self.ops = ops
    }

    /// The cell whose ops, read as base-5 digits with edge 0 most significant, spell `index`
    /// (0..<15,625): the order in which the controller's sequences count.
    public init(index: Int) {
        precondition((0..<Self.cellCount).contains(index), "NAS-Bench-201 cell index \(index) is outside 0..<\(Self.cellCount)")
        var rest = index
        var ops = [NASBench201Op](repeating: .none, count: Self.edgeCount)
        for edge in stride(from: Self.edgeCount - 1, through: 0, by: -1) {
            ops[edge] = NASBench201Op(rawValue: UInt8(rest % 5))!
            rest /= 5
        }
        self.ops = ops
    }

    /// The inverse of `init(index:)`.
    public var index: Int { ops.reduce(0) { $0 * 5 + Int($1.rawValue) } }

    // MARK: Architecture strings

    /// Why a string is not a NAS-Bench-201 architecture string.
    public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
        public let problem: String
        public var description: String { problem }
    }

    /// Parses the standard string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` exactly: three
    /// `+`-separated groups for nodes 1, 2, 3, group j listing `op~i` for i = 0..<j in order.
    public init(parsing text: some StringProtocol) throws(FormatError) {
        // Tables hold thousands of these: a byte scan for well-formed strings, and the slower
        // split below only to say what is wrong with a bad one.
        let utf8 = text.utf8
        if let ops = utf8.withContiguousStorageIfAvailable(Self.scan) ?? Array(utf8).withUnsafeBufferPointer(Self.scan) {
            self.ops = ops
            return
        }
        func fail(_ problem: String) -> FormatError {
            let shown = text.count > 120 ? text.prefix(120) + "…" : Substring(text)
            return FormatError(problem: "'\(shown)' is not a NAS-Bench-201 architecture string: \(problem)")
        }
        let groups = text.split(separator: "+", omittingEmptySubsequences: false)
        guard groups.count == Self.nodeCount - 1 else {
            throw fail("it has \(groups.count) '+'-separated node groups, expected \(Self.nodeCount - 1)")
        }
        var ops = [NASBench201Op]()
        for (g, group) in groups.enumerated() {
            let node = g + 1
            guard group.count >= 2, group.first == "|", group.last == "|" else {
                throw fail("node \(node)'s group does not start and end with '|'")
            }
            let items = group.dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false)
            guard items.count == node else {
                throw fail("node \(node) lists \(items.count) inputs, expected \(node)")
            }
            for (source, item) in items.enumerated() {
                let parts = item.split(separator: "~", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("'\(item)' is not of the form op~node") }
                guard parts[1] == String(source) else {
                    throw fail("input \(source + 1) of node \(node) names node '\(parts[1])', expected \(source)")
                }
                guard let op = NASBench201Op(name: parts[0]) else { throw fail("unknown op '\(parts[0])'") }
                ops.append(op)
            }
        }
        self.ops = ops
    }

    private static let opNameBytes: [[UInt8]] = NASBench201Op.allCases.map { Array($0.name.utf8) }

    /// The ops of a well-formed string, nil for anything else.
    private static func scan(_ b: UnsafeBufferPointer<UInt8>) -> [NASBench201Op]? {
        var ops = [NASBench201Op]()
        ops.reserveCapacity(edgeCount)
        var i = 0
        for node in 1..<nodeCount {
            if node > 1 {
                guard i < b.count, b[i] == UInt8(ascii: "+") else { return nil }
                i += 1
            }
            guard i < b.count, b[i] == UInt8(ascii: "|") else { return nil }
            i += 1
            for source in 0..<node {
                let start = i
                while i < b.count && b[i] != UInt8(ascii: "~") { i += 1 }
                guard i < b.count,
                      let k = opNameBytes.firstIndex(where: { $0.elementsEqual(UnsafeBufferPointer(rebasing: b[start..<i])) })
                else { return nil }
                guard i + 2 < b.count, b[i + 1] == UInt8(ascii: "0") + UInt8(source), b[i + 2] == UInt8(ascii: "|") else { return nil }
                i += 3
                ops.append(NASBench201Op.allCases[k])
            }
        }
        return i == b.count ? ops : nil
    }

    public init?(architectureString text: some StringProtocol) {
        guard let cell = try? NASBench201Cell(parsing: text) else { return nil }
        self = cell
    }

    /// The standard string, exactly as the benchmark spells it.
    public var architectureString: String {
        var text = ""
        var edge = 0
        for node in 1..<Self.nodeCount {
            if node > 1 { text += "+" }
            text += "|"
            for source in 0..<node {
                text += ops[edge].name + "~" + String(source) + "|"
                edge += 1
            }
        }
        return text
    }

    public var description: String { architectureString }

    // MARK: Views

    /// The 4×4 node adjacency: row i, column j is 1 when edge i → j carries an op other than `none`.
    public var nodeMatrix: [[Int]] {
        var matrix = [[Int]](repeating: [Int](repeating: 0, count: Self.nodeCount), count: Self.nodeCount)
        for (edge, op) in zip(Self.edges, ops) where op != .none { matrix[edge.from][edge.to] = 1 }
        return matrix
    }

    /// The comparator's view, the "ops on nodes" transform predictors use for NAS-Bench-201:
    /// node 0 the input, node 1 + k the op of edge k, node 7 the output. The input feeds the edge
    /// nodes leaving cell node 0; edge node (i → j) feeds every edge node leaving j; the edge nodes
    /// entering cell node 3 feed the output. The graph is the same for every cell; only ops differ.
    ///
    /// `none` stays an op node (id 2) rather than being deleted with its edges. Deleting it would
    /// need pruning, could leave no input → output path at all (341 cells, all at 10 % CIFAR-10
    /// accuracy, are exactly that), and would map cells that differ only in dead edges to one encoding
    /// while the table gives them different accuracies. As a node the comparator simply learns an
    /// embedding for "this path carries nothing", and each of the 15,625 rows keeps its own encoding.
    public var graphEncoding: GraphEncoding {
        let n = Self.edgeCount + 2
        let output = n - 1
        var adjacency = [UInt8](repeating: 0, count: n * n)
        for (k, edge) in Self.edges.enumerated() {
            let node = k + 1
            if edge.from == 0 { adjacency[0 * n + node] = 1 }
            for (l, next) in Self.edges.enumerated() where next.from == edge.to { adjacency[node * n + l + 1] = 1 }
            if edge.to == Self.nodeCount - 1 { adjacency[node * n + output] = 1 }
        }
        let ids = [NASBench201Cell.inputID] + ops.map(\.comparatorID) + [NASBench201Cell.outputID]
        return GraphEncoding(ops: ids, adjacency: adjacency)
    }

    /// Comparator op ids of the encoding's end nodes.
    public static let inputID: UInt8 = 1
    public static let outputID: UInt8 = 7
}
