/// The raw values are the comparator's op ids in the original CTNAS code, where 0 is the
/// padding ("dummy") node; keeping them lets its trained weights and data line up with ours.
public enum NASBench101Op: UInt8, Sendable, CaseIterable {
    case input = 1, conv1x1 = 2, conv3x3 = 3, maxpool3x3 = 4, output = 5

    /// The name used by NAS-Bench-101 and its data files.
    public var name: String {
        switch self {
        case .input: "input"
        case .conv1x1: "conv1x1-bn-relu"
        case .conv3x3: "conv3x3-bn-relu"
        case .maxpool3x3: "maxpool3x3"
        case .output: "output"
        }
    }

    public init?(name: String) {
        guard let op = NASBench101Op.allCases.first(where: { $0.name == name }) else { return nil }
        self = op
    }

    var isIntermediate: Bool { self == .conv1x1 || self == .conv3x3 || self == .maxpool3x3 }
}

/// A valid, pruned NAS-Bench-101 cell: the only form the benchmark has an entry for.
/// Equality compares this spelling of the graph; `fingerprint` identifies it up to vertex order.
public struct NASBench101Cell: Hashable, Sendable {
    public static let maxVertices = 7
    public static let maxEdges = 9

    /// First `.input`, last `.output`, the rest intermediate ops.
    public let ops: [NASBench101Op]
    /// Row-major `n × n`, strictly upper triangular 0/1; the edge i → j is `adjacency[i * n + j]`.
    public let adjacency: [UInt8]

    public var vertexCount: Int { ops.count }
    public var edgeCount: Int { adjacency.reduce(0) { $0 + Int($1) } }

    /// Why a spec is not a NAS-Bench-101 cell.
    public enum InvalidSpec: Error, Equatable, Sendable, CustomStringConvertible {
        case sizeMismatch(adjacencyCount: Int, opCount: Int)
        case notBinary(row: Int, column: Int)
        case notStrictlyUpperTriangular(row: Int, column: Int)
        case inputNotConnectedToOutput
        case tooManyVertices(Int)
        case tooManyEdges(Int)
        case firstOpNotInput
        case lastOpNotOutput
        case notAnIntermediateOp(vertex: Int, NASBench101Op)

        public var description: String {
            switch self {
            case let .sizeMismatch(adjacencyCount, opCount):
                "adjacency has \(adjacencyCount) entries, expected \(opCount * opCount) for \(opCount) ops"
            case let .notBinary(row, column): "adjacency entry (\(row), \(column)) is not 0 or 1"
            case let .notStrictlyUpperTriangular(row, column):
                "adjacency has an edge \(row) → \(column) on or below the diagonal"
            case .inputNotConnectedToOutput: "no path from input to output"
            case let .tooManyVertices(count): "\(count) vertices after pruning, at most \(NASBench101Cell.maxVertices) allowed"
            case let .tooManyEdges(count): "\(count) edges after pruning, at most \(NASBench101Cell.maxEdges) allowed"
            case .firstOpNotInput: "first op is not input"
            case .lastOpNotOutput: "last op is not output"
            case let .notAnIntermediateOp(vertex, op): "vertex \(vertex) has op \(op.name), which is only valid at an end"
            }
        }
    }

    init(validatedOps ops: [NASBench101Op], adjacency: [UInt8]) {
        self.ops = ops
        self.adjacency = adjacency
    }

    /// Drops vertices that are not on an input → output path, then checks the result is in the
    /// benchmark, with the rules and order of the original NAS-Bench-101 `ModelSpec`.
    public static func pruning(adjacency: [UInt8], ops: [NASBench101Op]) throws(InvalidSpec) -> NASBench101Cell {
        let n = ops.count
        guard n > 0, adjacency.count == n * n else {
            throw .sizeMismatch(adjacencyCount: adjacency.count, opCount: n)
        }
        for row in 0..<n {
            for column in 0..<n where adjacency[row * n + column] != 0 {
                guard adjacency[row * n + column] == 1 else { throw .notBinary(row: row, column: column) }
                guard column > row else { throw .notStrictlyUpperTriangular(row: row, column: column) }
            }
        }
        // The matrix is strictly upper triangular, so index order is a topological order and one
        // sweep each way finds what the original's DFS from input and from output visit.
        var fromInput = [Bool](repeating: false, count: n)
        fromInput[0] = true
        for v in 1..<n {
            fromInput[v] = (0..<v).contains { fromInput[$0] && adjacency[$0 * n + v] != 0 }
        }
        var toOutput = [Bool](repeating: false, count: n)
        toOutput[n - 1] = true
        for v in stride(from: n - 2, through: 0, by: -1) {
            toOutput[v] = ((v + 1)..<n).contains { toOutput[$0] && adjacency[v * n + $0] != 0 }
        }
        let kept = (0..<n).filter { fromInput[$0] && toOutput[$0] }
        // Mirrors `len(extraneous) > num_vertices - 2`: input and output must both survive.
        guard n - kept.count <= n - 2 else { throw .inputNotConnectedToOutput }

        let prunedOps = kept.map { ops[$0] }
        var prunedAdjacency = [UInt8]()
        prunedAdjacency.reserveCapacity(kept.count * kept.count)
        for row in kept {
            for column in kept { prunedAdjacency.append(adjacency[row * n + column]) }
        }
        let cell = NASBench101Cell(validatedOps: prunedOps, adjacency: prunedAdjacency)
        if let problem = cell.specProblem { throw problem }
        return cell
    }

    var specProblem: InvalidSpec? {
        Self.specProblem(vertexCount: vertexCount, edgeCount: edgeCount) { ops[$0] }
    }

    /// The checks NAS-Bench-101 applies after pruning (`_check_spec`), in its order. Takes the
    /// cell in pieces so the table loader can check rows without building a cell per row.
    static func specProblem(vertexCount: Int, edgeCount: Int, op: (Int) -> NASBench101Op) -> InvalidSpec? {
        if vertexCount < 2 { return .inputNotConnectedToOutput }
        if vertexCount > maxVertices { return .tooManyVertices(vertexCount) }
        if edgeCount > maxEdges { return .tooManyEdges(edgeCount) }
        if op(0) != .input { return .firstOpNotInput }
        if op(vertexCount - 1) != .output { return .lastOpNotOutput }
        for vertex in 1..<(vertexCount - 1) where !op(vertex).isIntermediate {
            return .notAnIntermediateOp(vertex: vertex, op(vertex))
        }
        return nil
    }

    /// The official NAS-Bench-101 module hash, the key of every benchmark table.
    public var fingerprint: String { NASBench101Fingerprint.value(of: packed).hex }

    /// The comparator's view: always 7 nodes, real ops first and padding (id 0) after, like
    /// the original CTNAS `nasbench_tensorize`. Edges stay i → j; the comparator transposes.
    public var graphEncoding: GraphEncoding {
        let size = Self.maxVertices
        var paddedOps = [UInt8](repeating: 0, count: size)
        var paddedAdjacency = [UInt8](repeating: 0, count: size * size)
        let n = vertexCount
        for i in 0..<n {
            paddedOps[i] = ops[i].rawValue
            for j in 0..<n { paddedAdjacency[i * size + j] = adjacency[i * n + j] }
        }
        var widths = [UInt8](repeating: GraphEncoding.fullWidth, count: size)
        let moduleChannels = vertexChannels(input: Int(GraphEncoding.fullWidth), output: Int(GraphEncoding.fullWidth))
        for i in 1..<max(n - 1, 1) { widths[i] = UInt8(moduleChannels[i]) }
        return GraphEncoding(ops: paddedOps, adjacency: paddedAdjacency, widths: widths)
    }

    /// Channels of each vertex in a module with these input and output channels, by
    /// NAS-Bench-101's `compute_vertex_channels`: the output concatenates the vertices feeding
    /// it, so they split its channels; any other vertex takes the widest of its successors.
    public func vertexChannels(input: Int, output: Int) -> [Int] {
        let n = vertexCount
        var channels = [Int](repeating: 0, count: n)
        channels[0] = input
        channels[n - 1] = output
        guard n > 2 else { return channels }
        func edge(_ i: Int, _ j: Int) -> Bool { adjacency[i * n + j] != 0 }
        let feeding = (1..<(n - 1)).filter { edge($0, n - 1) }
        var correction = output % feeding.count
        for v in feeding {
            channels[v] = output / feeding.count
            if correction > 0 { channels[v] += 1; correction -= 1 }
        }
        for v in stride(from: n - 3, through: 1, by: -1) where !edge(v, n - 1) {
            for successor in (v + 1)..<(n - 1) where edge(v, successor) {
                channels[v] = max(channels[v], channels[successor])
            }
        }
        return channels
    }

    /// Trainable parameters of the NAS-Bench-101 network built from this cell (stem, three
    /// stacks of three modules doubling channels from 128, classifier), as its `model_builder`
    /// counts them: convolutions without bias, batch norm scale and shift, dense with bias.
    public var trainableParameters: Int {
        let n = vertexCount
        func convolution(_ kernel: Int, _ from: Int, _ to: Int) -> Int { kernel * kernel * from * to + 2 * to }
        var total = convolution(3, 3, 128)
        var input = 128, output = 128
        for stack in 0..<3 {
            if stack > 0 { output *= 2 }
            for _ in 0..<3 {
                let channels = vertexChannels(input: input, output: output)
                for v in 1..<max(n - 1, 1) {
                    if adjacency[v] != 0 { total += convolution(1, input, channels[v]) }
                    switch ops[v] {
                    case .conv3x3: total += convolution(3, channels[v], channels[v])
                    case .conv1x1: total += convolution(1, channels[v], channels[v])
                    default: break
                    }
                }
                if n == 2 || adjacency[n - 1] != 0 { total += convolution(1, input, output) }
                input = output
            }
        }
        return total + output * 10 + 10
    }

    var packed: PackedNASBench101Cell {
        let n = vertexCount
        var opCodes: UInt64 = 0
        var edgeBits: UInt64 = 0
        for i in 0..<n {
            opCodes |= UInt64(ops[i].rawValue) << UInt64(8 * i)
            for j in 0..<n where adjacency[i * n + j] != 0 {
                edgeBits |= PackedNASBench101Cell.bit(from: i, to: j)
            }
        }
        return PackedNASBench101Cell(opCodes: opCodes, edgeBits: edgeBits)
    }

    init(packed: PackedNASBench101Cell) {
        let n = packed.vertexCount
        var ops = [NASBench101Op]()
        ops.reserveCapacity(n)
        var adjacency = [UInt8](repeating: 0, count: n * n)
        for i in 0..<n {
            ops.append(NASBench101Op(rawValue: packed.opCode(at: i))!)
            for j in 0..<n where packed.hasEdge(from: i, to: j) { adjacency[i * n + j] = 1 }
        }
        self.init(validatedOps: ops, adjacency: adjacency)
    }
}

/// A cell in 16 bytes, the form the table stores 423,624 of. Byte k of `opCodes` is the op id
/// of vertex k (0 past the last vertex); bit `i * 7 + j` of `edgeBits` is the edge i → j.
struct PackedNASBench101Cell: Hashable, Sendable {
    var opCodes: UInt64
    var edgeBits: UInt64

    static func bit(from i: Int, to j: Int) -> UInt64 { 1 << UInt64(i * NASBench101Cell.maxVertices + j) }

    var vertexCount: Int { (64 - opCodes.leadingZeroBitCount + 7) / 8 }
    func opCode(at vertex: Int) -> UInt8 { UInt8(truncatingIfNeeded: opCodes >> UInt64(8 * vertex)) }
    func hasEdge(from i: Int, to j: Int) -> Bool { edgeBits & Self.bit(from: i, to: j) != 0 }

    /// True when no vertex would be pruned, i.e. every vertex lies on an input → output path.
    /// Assumes edges only go from lower to higher indices.
    var isPruned: Bool {
        let n = vertexCount
        guard n >= 2 else { return false }
        var fromInput: UInt8 = 1
        for v in 1..<n where (0..<v).contains(where: { fromInput & (1 << $0) != 0 && hasEdge(from: $0, to: v) }) {
            fromInput |= 1 << v
        }
        var toOutput: UInt8 = 1 << (n - 1)
        for v in stride(from: n - 2, through: 0, by: -1)
        where ((v + 1)..<n).contains(where: { toOutput & (1 << $0) != 0 && hasEdge(from: v, to: $0) }) {
            toOutput |= 1 << v
        }
        let all: UInt8 = UInt8(truncatingIfNeeded: (1 << n) - 1)
        return fromInput & toOutput == all
    }
}

/// The NAS-Bench-101 `hash_fn`, reproduced byte for byte: MD5 over the exact text Python builds
/// (`str(tuple)`, joined hex digests, `str(list)`). All buffers live on the stack because
/// checking a whole table runs this about 24 million MD5s.
enum NASBench101Fingerprint {
    static func value(of cell: PackedNASBench101Cell) -> MD5Value {
        let n = cell.vertexCount
        return withUnsafeTemporaryAllocation(of: MD5Value.self, capacity: 3 * NASBench101Cell.maxVertices) { slots in
            withUnsafeTemporaryAllocation(byteCount: 512, alignment: 8) { text in
                var hashes = slots.baseAddress!
                var newHashes = hashes + NASBench101Cell.maxVertices
                let neighbours = newHashes + NASBench101Cell.maxVertices
                let out = text.baseAddress!
                var length = 0
                func append(_ byte: UInt8) {
                    out.storeBytes(of: byte, toByteOffset: length, as: UInt8.self)
                    length += 1
                }
                func append(_ number: Int) {
                    if number < 0 { append(UInt8(ascii: "-")) }
                    let magnitude = abs(number)
                    if magnitude >= 10 { append(UInt8(ascii: "0") + UInt8(magnitude / 10)) }
                    append(UInt8(ascii: "0") + UInt8(magnitude % 10))
                }
                func append(_ hash: MD5Value) {
                    hash.writeHex(to: out + length)
                    length += 32
                }
                func md5OfText() -> MD5Value {
                    Digest.md5Value(of: UnsafeRawBufferPointer(start: out, count: length))
                }

                for v in 0..<n {
                    var outDegree = 0, inDegree = 0
                    for w in 0..<n {
                        if cell.hasEdge(from: v, to: w) { outDegree += 1 }
                        if cell.hasEdge(from: w, to: v) { inDegree += 1 }
                    }
                    length = 0
                    append(UInt8(ascii: "("))
                    append(outDegree)
                    append(UInt8(ascii: ",")); append(UInt8(ascii: " "))
                    append(inDegree)
                    append(UInt8(ascii: ",")); append(UInt8(ascii: " "))
                    append(label(of: cell, vertex: v))
                    append(UInt8(ascii: ")"))
                    hashes[v] = md5OfText()
                }

                for _ in 0..<n {
                    for v in 0..<n {
                        length = 0
                        var count = 0
                        for w in 0..<n where cell.hasEdge(from: w, to: v) {
                            neighbours[count] = hashes[w]
                            count += 1
                        }
                        sortPrefix(neighbours, count)
                        for k in 0..<count { append(neighbours[k]) }
                        append(UInt8(ascii: "|"))
                        count = 0
                        for w in 0..<n where cell.hasEdge(from: v, to: w) {
                            neighbours[count] = hashes[w]
                            count += 1
                        }
                        sortPrefix(neighbours, count)
                        for k in 0..<count { append(neighbours[k]) }
                        append(UInt8(ascii: "|"))
                        append(hashes[v])
                        newHashes[v] = md5OfText()
                    }
                    swap(&hashes, &newHashes)
                }

                sortPrefix(hashes, n)
                length = 0
                append(UInt8(ascii: "["))
                for v in 0..<n {
                    if v > 0 { append(UInt8(ascii: ",")); append(UInt8(ascii: " ")) }
                    append(UInt8(ascii: "'"))
                    append(hashes[v])
                    append(UInt8(ascii: "'"))
                }
                append(UInt8(ascii: "]"))
                return md5OfText()
            }
        }
    }

    /// NAS-Bench-101 labels by position, not by op: -1 for the input, -2 for the output, and
    /// the index in `[conv3x3, conv1x1, maxpool3x3]` in between.
    private static func label(of cell: PackedNASBench101Cell, vertex: Int) -> Int {
        if vertex == 0 { return -1 }
        if vertex == cell.vertexCount - 1 { return -2 }
        switch NASBench101Op(rawValue: cell.opCode(at: vertex)) {
        case .conv3x3: return 0
        case .conv1x1: return 1
        case .maxpool3x3: return 2
        default: preconditionFailure("fingerprint of a cell with an end op in the middle")
        }
    }

    /// Insertion sort: at most 7 elements, and no allocation.
    private static func sortPrefix(_ values: UnsafeMutablePointer<MD5Value>, _ count: Int) {
        guard count > 1 else { return }
        for i in 1..<count {
            let value = values[i]
            var j = i
            while j > 0 && value < values[j - 1] {
                values[j] = values[j - 1]
                j -= 1
            }
            values[j] = value
        }
    }
}
