import Engine

/// Byte format of every coordinator ↔ worker message; one message is one ZeroMQ frame.
///
/// Layout: a 16-byte header — magic "CTNS", version UInt16, type UInt8, reserved UInt8 (0),
/// request id UInt64 — then the body of that type. Integers are little-endian, floats are their
/// IEEE-754 bit patterns, strings are UInt16 length + UTF-8, lists are UInt32 count + elements.
/// The encoding is canonical: a decoded message re-encodes to exactly the bytes it came from.
///
/// Decoding treats input as hostile: every count is checked against the bytes left before anything
/// is allocated, and no input can make it trap. Every float must be finite (a NaN or infinity in
/// weights or gradients would silently poison the model on the other side), so a sender that
/// produced one should send `error` instead; the encoder writes it anyway and the receiver rejects
/// the frame.
public enum Wire {
    /// 2: cells carry a width per node.
    public static let version: UInt16 = 2
    public static let maxMessageSize = 64 << 20
    /// Longest string, in UTF-8 bytes; encoding a longer one is a programmer error.
    public static let maxStringBytes = 4096

    static let magic: [UInt8] = Array("CTNS".utf8)
    static let headerSize = 16
    static let maxNodes = 16
    /// Cells and sequences are far larger in memory than on the wire (a 4-byte cell becomes three
    /// heap arrays), so their number is capped to keep a 64 MiB frame from expanding into gigabytes.
    static let maxCells = 1 << 20
    static let maxSequences = 1 << 20

    public static func encode(_ envelope: Envelope) -> [UInt8] {
        var w = Writer(capacity: headerSize + bodySizeHint(envelope.message))
        w.bytes.append(contentsOf: magic)
        w.put(version)
        w.put(MessageType(envelope.message).rawValue)
        w.put(UInt8(0))
        w.put(envelope.requestId)
        switch envelope.message {
        case .hello(let h):
            w.string(h.workerId)
            w.put(h.threads)
            w.put(h.engineVersion)
            w.put(h.capabilities)
        case .welcome(let x):
            w.put(x.heartbeatIntervalMs)
            w.put(x.livenessMs)
            w.string(x.space)
        case .heartbeat, .standby:
            break
        case .disconnect(let reason):
            w.string(reason)
        case .weights(let x):
            w.put(x.kind.rawValue)
            w.put(x.version)
            w.floatList(x.parameters)
        case .job(let job):
            w.put(job.jobId)
            encode(job.payload, into: &w)
        case .result(let r):
            w.put(r.jobId)
            encode(r.payload, into: &w)
        case .error(let e):
            w.put(e.jobId)
            w.put(e.code)
            w.string(e.message)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], maxSize: Int = maxMessageSize) throws(WireError) -> Envelope {
        guard bytes.count <= maxSize else { throw .tooLarge(size: bytes.count, limit: maxSize) }
        var r = Reader(bytes)
        try r.need(magic.count)
        guard bytes[0..<magic.count].elementsEqual(magic) else { throw .badMagic }
        r.offset = magic.count
        let v = try r.get(UInt16.self)
        guard v == version else { throw .unsupportedVersion(v) }
        let rawType = try r.get(UInt8.self)
        guard let type = MessageType(rawValue: rawType) else { throw .unknownType(rawType) }
        let reserved = try r.get(UInt8.self)
        guard reserved == 0 else { throw .invalid("reserved header byte is \(reserved), not 0") }
        let requestId = try r.get(UInt64.self)

        let message: Message
        switch type {
        case .hello:
            message = .hello(Hello(workerId: try r.string("worker id"), threads: try r.get(UInt16.self),
                                   engineVersion: try r.get(UInt32.self), capabilities: try r.get(UInt32.self)))
        case .welcome:
            message = .welcome(Welcome(heartbeatIntervalMs: try r.get(UInt32.self), livenessMs: try r.get(UInt32.self),
                                       space: try r.string("space")))
        case .heartbeat:
            message = .heartbeat
        case .disconnect:
            message = .disconnect(reason: try r.string("disconnect reason"))
        case .standby:
            message = .standby
        case .weights:
            let rawKind = try r.get(UInt8.self)
            guard let kind = Weights.Kind(rawValue: rawKind) else { throw .invalid("unknown weights kind \(rawKind)") }
            let version = try r.get(UInt64.self)
            let count = try r.count(elementSize: 4, what: "parameter")
            message = .weights(Weights(kind: kind, version: version, parameters: try r.floats(count, what: "parameter")))
        case .job:
            message = .job(Job(jobId: try r.get(UInt64.self), payload: try decodeJobPayload(&r)))
        case .result:
            message = .result(JobResult(jobId: try r.get(UInt64.self), payload: try decodeResultPayload(&r)))
        case .error:
            message = .error(WorkerError(jobId: try r.get(UInt64.self), code: try r.get(UInt16.self),
                                         message: try r.string("error message")))
        }
        guard r.remaining == 0 else { throw .trailingBytes(r.remaining) }
        return Envelope(requestId: requestId, message: message)
    }

    // MARK: Job and result bodies

    private enum PayloadKind: UInt8 {
        case score = 1, comparatorGradient = 2, policyGradient = 3
    }

    private static func encode(_ payload: JobPayload, into w: inout Writer) {
        switch payload {
        case .score(let job):
            w.put(PayloadKind.score.rawValue)
            w.put(job.comparatorVersion)
            w.cells(job.cells)
            w.count(job.pairs.count)
            w.pairs(job.pairs, cellCount: job.cells.count)
        case .comparatorGradient(let job):
            precondition(job.targets.count == job.pairs.count, "one target per pair")
            w.put(PayloadKind.comparatorGradient.rawValue)
            w.put(job.comparatorVersion)
            w.cells(job.cells)
            // One count for pairs and targets so a mismatch cannot even be expressed on the wire.
            w.count(job.pairs.count)
            w.pairs(job.pairs, cellCount: job.cells.count)
            for t in job.targets { w.put(t.bitPattern) }
        case .policyGradient(let job):
            precondition(job.advantages.count == job.sequences.count, "one advantage per sequence")
            w.put(PayloadKind.policyGradient.rawValue)
            w.put(job.controllerVersion)
            w.put(job.entropyCoefficient.bitPattern)
            w.count(job.sequences.count)
            for s in job.sequences {
                precondition(s.count <= Int(UInt16.max), "sequence too long for the wire")
                w.put(UInt16(s.count))
                for token in s { w.put(token) }
            }
            for a in job.advantages { w.put(a.bitPattern) }
        }
    }

    private static func decodeJobPayload(_ r: inout Reader) throws(WireError) -> JobPayload {
        let rawKind = try r.get(UInt8.self)
        switch PayloadKind(rawValue: rawKind) {
        case .score:
            let version = try r.get(UInt64.self)
            let cells = try r.cells()
            let count = try r.count(elementSize: 8, what: "pair")
            return .score(ScoreJob(comparatorVersion: version, cells: cells,
                                   pairs: try r.pairs(count, cellCount: cells.count)))
        case .comparatorGradient:
            let version = try r.get(UInt64.self)
            let cells = try r.cells()
            let count = try r.count(elementSize: 12, what: "pair")
            let pairs = try r.pairs(count, cellCount: cells.count)
            let targets = try r.floats(count, what: "target", unitInterval: true)
            return .comparatorGradient(ComparatorGradientJob(comparatorVersion: version, cells: cells,
                                                             pairs: pairs, targets: targets))
        case .policyGradient:
            let version = try r.get(UInt64.self)
            let entropy = try r.finiteFloat("entropy coefficient")
            // Each sample takes at least its UInt16 length and its Float advantage.
            let count = try r.count(elementSize: 6, limit: maxSequences, what: "sequence")
            var sequences = [[UInt16]]()
            sequences.reserveCapacity(count)
            for _ in 0..<count {
                let length = Int(try r.get(UInt16.self))
                sequences.append(try r.uint16s(length))
            }
            let advantages = try r.floats(count, what: "advantage")
            return .policyGradient(PolicyGradientJob(controllerVersion: version, entropyCoefficient: entropy,
                                                     sequences: sequences, advantages: advantages))
        case nil:
            throw .invalid("unknown job kind \(rawKind)")
        }
    }

    private static func encode(_ payload: ResultPayload, into w: inout Writer) {
        switch payload {
        case .scores(let scores):
            w.put(PayloadKind.score.rawValue)
            w.floatList(scores)
        case .comparatorGradient(let x):
            w.put(PayloadKind.comparatorGradient.rawValue)
            w.floatList(x.gradient)
            w.put(x.pairCount)
            w.put(x.lossSum.bitPattern)
            w.put(x.correct)
        case .policyGradient(let x):
            w.put(PayloadKind.policyGradient.rawValue)
            w.floatList(x.gradient)
            w.put(x.sampleCount)
            w.put(x.logProbabilitySum.bitPattern)
            w.put(x.entropySum.bitPattern)
        }
    }

    private static func decodeResultPayload(_ r: inout Reader) throws(WireError) -> ResultPayload {
        let rawKind = try r.get(UInt8.self)
        switch PayloadKind(rawValue: rawKind) {
        case .score:
            let count = try r.count(elementSize: 4, what: "score")
            return .scores(try r.floats(count, what: "score", unitInterval: true))
        case .comparatorGradient:
            let count = try r.count(elementSize: 4, what: "gradient")
            let gradient = try r.floats(count, what: "gradient")
            let pairCount = try r.get(UInt32.self)
            let lossSum = try r.finiteDouble("loss sum")
            let correct = try r.get(UInt32.self)
            guard correct <= pairCount else { throw .invalid("\(correct) correct out of \(pairCount) pairs") }
            return .comparatorGradient(ComparatorGradientResult(gradient: gradient, pairCount: pairCount,
                                                                lossSum: lossSum, correct: correct))
        case .policyGradient:
            let count = try r.count(elementSize: 4, what: "gradient")
            return .policyGradient(PolicyGradientResult(
                gradient: try r.floats(count, what: "gradient"), sampleCount: try r.get(UInt32.self),
                logProbabilitySum: try r.finiteDouble("log-probability sum"),
                entropySum: try r.finiteDouble("entropy sum")))
        case nil:
            throw .invalid("unknown result kind \(rawKind)")
        }
    }

    /// Upper bound on the body size, so large jobs are written without regrowing the buffer.
    private static func bodySizeHint(_ message: Message) -> Int {
        func cells(_ c: [GraphEncoding]) -> Int { 4 + c.count * (2 + 2 * maxNodes + maxNodes * maxNodes / 8) }
        switch message {
        case .weights(let x): return 13 + 4 * x.parameters.count
        case .job(let job):
            switch job.payload {
            case .score(let s): return 32 + cells(s.cells) + 8 * s.pairs.count
            case .comparatorGradient(let s): return 32 + cells(s.cells) + 12 * s.pairs.count
            case .policyGradient(let s): return 32 + s.sequences.reduce(6 * s.sequences.count) { $0 + 2 * $1.count }
            }
        case .result(let r):
            switch r.payload {
            case .scores(let s): return 16 + 4 * s.count
            case .comparatorGradient(let x): return 40 + 4 * x.gradient.count
            case .policyGradient(let x): return 40 + 4 * x.gradient.count
            }
        default: return 64
        }
    }
}

public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic
    case unsupportedVersion(UInt16)
    case unknownType(UInt8)
    /// The frame ended (or a count promised more than it holds) `needed` bytes in, `available` left.
    case truncated(needed: Int, available: Int)
    case tooLarge(size: Int, limit: Int)
    case trailingBytes(Int)
    /// Well-formed bytes carrying an impossible value.
    case invalid(String)

    public var description: String {
        switch self {
        case .badMagic: "not a ctnas message (bad magic)"
        case .unsupportedVersion(let v): "unsupported protocol version \(v) (this build speaks \(Wire.version))"
        case .unknownType(let t): "unknown message type \(t)"
        case .truncated(let needed, let available): "truncated message: needed \(needed) bytes, \(available) left"
        case .tooLarge(let size, let limit): "message of \(size) bytes exceeds the \(limit)-byte limit"
        case .trailingBytes(let n): "\(n) unexpected bytes after the message"
        case .invalid(let why): "invalid message: \(why)"
        }
    }
}

private enum MessageType: UInt8 {
    case hello = 1, welcome, heartbeat, disconnect, standby, weights, job, result, error

    init(_ message: Message) {
        switch message {
        case .hello: self = .hello
        case .welcome: self = .welcome
        case .heartbeat: self = .heartbeat
        case .disconnect: self = .disconnect
        case .standby: self = .standby
        case .weights: self = .weights
        case .job: self = .job
        case .result: self = .result
        case .error: self = .error
        }
    }
}

// MARK: - Byte cursors

private struct Writer {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func count(_ n: Int) {
        precondition(n <= Int(UInt32.max), "list too long for the wire")
        put(UInt32(n))
    }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= Wire.maxStringBytes, "string longer than Wire.maxStringBytes")
        put(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func floatList(_ values: [Float]) {
        count(values.count)
        #if _endian(little)
        // Float arrays are most of the traffic (weights, gradients): copy them in one go.
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in values { put(v.bitPattern) }
        #endif
    }

    mutating func cells(_ cells: [GraphEncoding]) {
        count(cells.count)
        for c in cells { cell(c) }
    }

    /// Node count, n op ids, adjacency as n² bits (row-major, least significant bit first,
    /// zero-padded to a byte), then n widths in 128ths.
    mutating func cell(_ c: GraphEncoding) {
        let n = c.ops.count
        precondition((1...Wire.maxNodes).contains(n), "cell must have 1...\(Wire.maxNodes) nodes")
        precondition(c.adjacency.count == n * n, "adjacency must be n×n")
        put(UInt8(n))
        bytes.append(contentsOf: c.ops)
        var byte: UInt8 = 0
        for (k, bit) in c.adjacency.enumerated() {
            precondition(bit <= 1, "adjacency entries must be 0 or 1")
            byte |= bit << UInt8(k & 7)
            if k & 7 == 7 { bytes.append(byte); byte = 0 }
        }
        if (n * n) & 7 != 0 { bytes.append(byte) }
        precondition(c.widths.count == n, "one width per node")
        bytes.append(contentsOf: c.widths)
    }

    mutating func pairs(_ pairs: [CellPair], cellCount: Int) {
        for p in pairs {
            precondition(Int(p.candidate) < cellCount && Int(p.reference) < cellCount, "pair index out of range")
            put(p.candidate)
            put(p.reference)
        }
    }
}

private struct Reader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    func need(_ n: Int) throws(WireError) {
        guard n <= remaining else { throw .truncated(needed: n, available: remaining) }
    }

    mutating func get<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try need(size)
        let start = offset
        offset += size
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: T.self)) }
    }

    /// Reads a UInt32 count and proves the frame still holds `count × elementSize` bytes, so the
    /// caller may allocate `count` elements without trusting the sender.
    mutating func count(elementSize: Int, limit: Int = .max, what: String) throws(WireError) -> Int {
        let raw = try get(UInt32.self)
        // UInt32 × a small constant cannot overflow UInt64.
        let needed = UInt64(raw) * UInt64(elementSize)
        guard needed <= UInt64(remaining) else {
            throw .truncated(needed: Int(clamping: needed), available: remaining)
        }
        let n = Int(raw)  // ≤ remaining, so it fits any Int
        guard n <= limit else { throw .invalid("\(n) \(what)s exceed the limit of \(limit)") }
        return n
    }

    mutating func string(_ what: String) throws(WireError) -> String {
        let n = Int(try get(UInt16.self))
        guard n <= Wire.maxStringBytes else { throw .invalid("\(what) is \(n) bytes, limit \(Wire.maxStringBytes)") }
        try need(n)
        guard let s = String(validating: bytes[offset..<offset + n], as: UTF8.self) else {
            throw .invalid("\(what) is not valid UTF-8")
        }
        offset += n
        return s
    }

    mutating func finiteFloat(_ what: String) throws(WireError) -> Float {
        let f = Float(bitPattern: try get(UInt32.self))
        guard f.isFinite else { throw .invalid("\(what) is not finite") }
        return f
    }

    mutating func finiteDouble(_ what: String) throws(WireError) -> Double {
        let d = Double(bitPattern: try get(UInt64.self))
        guard d.isFinite else { throw .invalid("\(what) is not finite") }
        return d
    }

    /// `count` must already be bounded by the bytes remaining (see `count(elementSize:)`).
    mutating func floats(_ count: Int, what: String, unitInterval: Bool = false) throws(WireError) -> [Float] {
        try need(4 * count)
        let start = offset
        let result = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                for k in 0..<count {
                    let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start + 4 * k, as: UInt32.self))
                    buffer[k] = Float(bitPattern: bits)
                }
            }
            initialized = count
        }
        for f in result {
            guard f.isFinite else { throw .invalid("\(what) is not finite") }
            guard !unitInterval || (0...1).contains(f) else { throw .invalid("\(what) \(f) is outside [0, 1]") }
        }
        offset += 4 * count
        return result
    }

    mutating func uint16s(_ count: Int) throws(WireError) -> [UInt16] {
        try need(2 * count)
        var result = [UInt16]()
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try get(UInt16.self)) }
        return result
    }

    mutating func cells() throws(WireError) -> [GraphEncoding] {
        // The smallest cell (one node) is 4 bytes: node count, one op, one adjacency byte, one width.
        let count = try count(elementSize: 4, limit: Wire.maxCells, what: "cell")
        var cells = [GraphEncoding]()
        cells.reserveCapacity(count)
        for _ in 0..<count { cells.append(try cell()) }
        return cells
    }

    mutating func cell() throws(WireError) -> GraphEncoding {
        let n = Int(try get(UInt8.self))
        guard (1...Wire.maxNodes).contains(n) else { throw .invalid("cell has \(n) nodes, expected 1...\(Wire.maxNodes)") }
        let bitBytes = (n * n + 7) / 8
        try need(n + bitBytes)
        let ops = Array(bytes[offset..<offset + n])
        offset += n
        var adjacency = [UInt8](repeating: 0, count: n * n)
        for k in 0..<n * n {
            adjacency[k] = (bytes[offset + (k >> 3)] >> UInt8(k & 7)) & 1
        }
        let usedBits = (n * n) & 7
        if usedBits != 0, bytes[offset + bitBytes - 1] >> UInt8(usedBits) != 0 {
            throw .invalid("nonzero padding bits in cell adjacency")
        }
        offset += bitBytes
        try need(n)
        let widths = Array(bytes[offset..<offset + n])
        offset += n
        guard widths.allSatisfy({ (1...GraphEncoding.fullWidth).contains($0) }) else {
            throw .invalid("cell width outside 1...\(GraphEncoding.fullWidth)")
        }
        return GraphEncoding(ops: ops, adjacency: adjacency, widths: widths)
    }

    mutating func pairs(_ count: Int, cellCount: Int) throws(WireError) -> [CellPair] {
        try need(8 * count)
        var result = [CellPair]()
        result.reserveCapacity(count)
        for _ in 0..<count {
            let p = CellPair(candidate: try get(UInt32.self), reference: try get(UInt32.self))
            guard UInt64(p.candidate) < UInt64(cellCount), UInt64(p.reference) < UInt64(cellCount) else {
                throw .invalid("pair (\(p.candidate), \(p.reference)) indexes past \(cellCount) cells")
            }
            result.append(p)
        }
        return result
    }
}
