import CZlib
import Foundation

/// A problem with a benchmark table file, located as precisely as the format allows.
public struct TableError: Error, CustomStringConvertible, Sendable {
    public let file: String
    /// "line N" for CSV (1-based, the header is line 1), "entry N" for JSON (the list index).
    public let location: String?
    public let problem: String

    public var description: String {
        [file, location, problem].compactMap { $0 }.joined(separator: ": ")
    }
}

/// The whole NAS-Bench-101 table, compact enough to hold all 423,624 cells in about 10 MB.
public struct NASBench101Table: Sendable {
    private let cells: [PackedNASBench101Cell]
    private let hashes: [MD5Value]
    private let testAccuracies: [Float]
    /// Only the original CTNAS JSON has validation accuracy; nil for the CSV.
    private let validationAccuracies: [Float]?
    /// The CSV's trainable_params column (the JSON has none).
    private let parameterCounts: [Int32]?
    private let rowOfHash: [MD5Value: Int32]
    private let ranks: [Int32]
    /// SHA-256 over the hashes and accuracies, so a checkpoint can tell it was made with
    /// another table (another file, another label column, reordered rows).
    public let contentFingerprint: String

    public var count: Int { cells.count }

    public func cell(at index: Int) -> NASBench101Cell { NASBench101Cell(packed: cells[index]) }
    public func hash(at index: Int) -> String { hashes[index].hex }
    public func testAccuracy(at index: Int) -> Float { testAccuracies[index] }
    /// The file's parameter count for the row, when it has one.
    public func trainableParameters(at index: Int) -> Int? { parameterCounts.map { Int($0[index]) } }

    /// The accuracy a search queries: validation accuracy where the file has it, otherwise test
    /// accuracy (the only one in the CSV).
    public var hasValidationAccuracy: Bool { validationAccuracies != nil }
    public func label(at index: Int) -> Float { validationAccuracies?[index] ?? testAccuracies[index] }

    public func index(ofFingerprint fingerprint: String) -> Int? {
        guard let value = MD5Value(hex: fingerprint.lowercased()), let row = rowOfHash[value] else { return nil }
        return Int(row)
    }

    /// The fingerprint is invariant under relabelling vertices, so any isomorphic spelling of a
    /// benchmark cell finds its row, as in NAS-Bench-101's own query.
    public func index(of cell: NASBench101Cell) -> Int? {
        rowOfHash[NASBench101Fingerprint.value(of: cell.packed)].map(Int.init)
    }

    /// 1 is the highest test accuracy; equal accuracies rank in row order.
    public func rank(at index: Int) -> Int { Int(ranks[index]) }
    public func percentile(at index: Int) -> Double { 100 * Double(ranks[index]) / Double(count) }

    /// The original CTNAS split: a seeded permutation of all rows, whose first `trainCount`
    /// rows are the labelled training cells and the next `validationCount` the validation cells.
    public func split(seed: UInt64, trainCount: Int = 423, validationCount: Int = 100) -> (train: [Int], validation: [Int]) {
        precondition(trainCount >= 0 && validationCount >= 0 && trainCount + validationCount <= count,
                     "split of \(trainCount) + \(validationCount) rows from a table of \(count)")
        var generator = SeededGenerator(seed: seed)
        let order = generator.permutation(count)
        return (Array(order[0..<trainCount]), Array(order[trainCount..<(trainCount + validationCount)]))
    }

    /// Rows in `range` whose stored hash differs from the fingerprint recomputed from their
    /// matrix and ops. Reads only immutable storage, so threads may check disjoint ranges at once.
    public func verifyFingerprints(range: Range<Int>) -> [Int] {
        range.filter { NASBench101Fingerprint.value(of: cells[$0]) != hashes[$0] }
    }

    // MARK: Loading

    public static func load(path: String) throws -> NASBench101Table {
        let lowercased = path.lowercased()
        if lowercased.hasSuffix(".json") { return try loadJSON(path: path) }
        if lowercased.hasSuffix(".csv") || lowercased.hasSuffix(".csv.gz") { return try loadCSV(path: path) }
        throw TableError(file: path, location: nil, problem: "unknown table format; expected .json, .csv or .csv.gz")
    }

    /// Reads the benchmark CSV (`idx,hash,num_vertices,…,test_acc_108ep_repeat0`), gzipped or
    /// not (told apart by content, not name). Checks every row for what is cheap; fingerprints
    /// are left to `verifyFingerprints`, which costs seconds for the whole table.
    public static func loadCSV(path: String) throws -> NASBench101Table {
        let rows = try withFileText(path: path) { text in try CSVReader(file: path, text: text).readRows() }
        return try NASBench101Table(file: path, rows: rows) { "line \($0 + 2)" }
    }

    /// Reads the original CTNAS `nas_bench.json`: a list of objects with `matrix`, `ops`,
    /// `validation_accuracy`, `test_accuracy` and optionally `hash_` (computed when absent).
    /// Its `rank` is ignored and recomputed from test accuracy, as CTNAS itself does.
    public static func loadJSON(path: String) throws -> NASBench101Table {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TableError(file: path, location: nil, problem: "cannot read the file")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw TableError(file: path, location: nil, problem: "not valid JSON (\(error.localizedDescription))")
        }
        guard let entries = parsed as? [Any] else {
            throw TableError(file: path, location: nil, problem: "expected a JSON list of architectures")
        }
        var rows = Rows(withValidation: true)
        rows.reserve(entries.count)
        for (index, entry) in entries.enumerated() {
            let row = try parseJSONEntry(entry) { problem in
                TableError(file: path, location: "entry \(index)", problem: problem)
            }
            rows.append(cell: row.cell, hash: row.hash, test: row.test, validation: row.validation)
        }
        return try NASBench101Table(file: path, rows: rows) { "entry \($0)" }
    }

    private static func parseJSONEntry(_ entry: Any, error: (String) -> TableError) throws
        -> (cell: PackedNASBench101Cell, hash: MD5Value, test: Float, validation: Float) {
        guard let object = entry as? [String: Any] else { throw error("not a JSON object") }
        guard let names = object["ops"] as? [String] else { throw error("ops is missing or not a list of names") }
        var ops = [NASBench101Op]()
        for name in names {
            guard let op = NASBench101Op(name: name) else { throw error("unknown op '\(name)'") }
            ops.append(op)
        }
        guard let matrix = object["matrix"] as? [[Any]] else { throw error("matrix is missing or not a list of lists") }
        guard matrix.count == ops.count, matrix.allSatisfy({ $0.count == ops.count }) else {
            throw error("matrix is not \(ops.count)×\(ops.count) like ops")
        }
        var adjacency = [UInt8]()
        for (row, entries) in matrix.enumerated() {
            for (column, value) in entries.enumerated() {
                guard let bit = value as? Int, bit == 0 || bit == 1 else {
                    throw error("matrix[\(row)][\(column)] is not 0 or 1")
                }
                adjacency.append(UInt8(bit))
            }
        }
        let cell: NASBench101Cell
        do {
            cell = try NASBench101Cell.pruning(adjacency: adjacency, ops: ops)
        } catch let problem {
            throw error("invalid cell: \(problem)")
        }
        guard cell.vertexCount == ops.count else {
            throw error("cell is not pruned: some vertex is not on an input → output path")
        }
        let hash: MD5Value
        if let text = object["hash_"], !(text is NSNull) {
            guard let string = text as? String, let value = MD5Value(hex: string) else {
                throw error("hash_ is not 32 lowercase hex digits")
            }
            hash = value
        } else {
            hash = NASBench101Fingerprint.value(of: cell.packed)
        }
        func accuracy(_ key: String) throws -> Float {
            guard let number = object[key] as? Double else { throw error("\(key) is missing or not a number") }
            guard number >= 0 && number <= 1 else { throw error("\(key) \(number) is outside [0, 1]") }
            return Float(number)
        }
        return (cell.packed, hash, try accuracy("test_accuracy"), try accuracy("validation_accuracy"))
    }

    private init(file: String, rows: Rows, locate: (Int) -> String) throws {
        guard !rows.cells.isEmpty else { throw TableError(file: file, location: nil, problem: "the table has no rows") }
        var rowOfHash = [MD5Value: Int32](minimumCapacity: rows.hashes.count)
        for (row, hash) in rows.hashes.enumerated() {
            if let earlier = rowOfHash.updateValue(Int32(row), forKey: hash) {
                throw TableError(file: file, location: locate(row),
                                 problem: "hash \(hash.hex) repeats the one at \(locate(Int(earlier)))")
            }
        }
        let accuracies = rows.testAccuracies
        let order = accuracies.indices.sorted { a, b in
            accuracies[a] != accuracies[b] ? accuracies[a] > accuracies[b] : a < b
        }
        var ranks = [Int32](repeating: 0, count: order.count)
        for (position, row) in order.enumerated() { ranks[row] = Int32(position + 1) }

        cells = rows.cells
        hashes = rows.hashes
        testAccuracies = rows.testAccuracies
        validationAccuracies = rows.validationAccuracies
        parameterCounts = rows.parameterCounts
        self.rowOfHash = rowOfHash
        self.ranks = ranks
        contentFingerprint = Self.contentDigest(rows)
    }

    private static func contentDigest(_ rows: Rows) -> String {
        // Fixed byte orders, so the digest is the same on every machine.
        var bytes = [UInt8]()
        bytes.reserveCapacity(8 + rows.hashes.count * 24)
        func append(_ word: UInt64, bytes count: Int) {
            for shift in stride(from: 8 * (count - 1), through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        append(UInt64(rows.hashes.count), bytes: 8)
        for hash in rows.hashes {
            append(hash.high, bytes: 8)
            append(hash.low, bytes: 8)
        }
        for accuracy in rows.testAccuracies { append(UInt64(accuracy.bitPattern), bytes: 4) }
        // Marks which label column the table has, so CSV and JSON tables never collide.
        bytes.append(rows.validationAccuracies == nil ? 0 : 1)
        for accuracy in rows.validationAccuracies ?? [] { append(UInt64(accuracy.bitPattern), bytes: 4) }
        return Digest.hex(Digest.sha256(bytes))
    }
}

/// Columns of the table as they are read, before indexing.
private struct Rows {
    var cells: [PackedNASBench101Cell] = []
    var hashes: [MD5Value] = []
    var testAccuracies: [Float] = []
    var validationAccuracies: [Float]?
    var parameterCounts: [Int32]?

    init(withValidation: Bool) {
        validationAccuracies = withValidation ? [] : nil
        parameterCounts = withValidation ? nil : []
    }

    mutating func reserve(_ count: Int) {
        cells.reserveCapacity(count)
        hashes.reserveCapacity(count)
        testAccuracies.reserveCapacity(count)
        validationAccuracies?.reserveCapacity(count)
        parameterCounts?.reserveCapacity(count)
    }

    mutating func append(cell: PackedNASBench101Cell, hash: MD5Value, test: Float, validation: Float? = nil, parameters: Int32? = nil) {
        if let parameters { parameterCounts?.append(parameters) }
        cells.append(cell)
        hashes.append(hash)
        testAccuracies.append(test)
        if let validation { validationAccuracies?.append(validation) }
    }
}

// MARK: - Reading files

/// Calls `body` with the file's bytes, inflated first if they are gzip. The bytes are followed
/// by a NUL in memory (not counted), so `strtod` can never read past the last field.
private func withFileText<Result>(path: String, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
    guard var data = FileManager.default.contents(atPath: path) else {
        throw TableError(file: path, location: nil, problem: "cannot read the file")
    }
    if data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B {
        var text = try data.withUnsafeBytes { try gunzip($0, file: path) }
        let count = text.count
        text.append(0)
        return try text.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
    let count = data.count
    data.append(0)
    return try data.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
}

/// Inflates a whole gzip file (one or more members). A stream that ends early or fails its
/// checks is an error, never a partial table.
private func gunzip(_ input: UnsafeRawBufferPointer, file: String) throws -> [UInt8] {
    func failure(_ problem: String) -> TableError { TableError(file: file, location: nil, problem: problem) }
    // The gzip trailer holds the size mod 2^32: a good first guess, trusted only when plausible.
    var capacity = 1 << 20
    if input.count >= 18 {
        let statedSize = Int(input.loadUnaligned(fromByteOffset: input.count - 4, as: UInt32.self).littleEndian)
        if statedSize <= input.count * 1100 { capacity = max(capacity, statedSize + 1) }
    }
    var output = [UInt8](repeating: 0, count: capacity)
    var produced = 0

    var stream = z_stream()
    // 15 + 32: the largest window, and accept a gzip (or zlib) header.
    guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
        throw failure("zlib could not start inflating")
    }
    defer { inflateEnd(&stream) }
    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
    stream.avail_in = UInt32(input.count)

    while true {
        if produced == output.count { output.append(contentsOf: repeatElement(0, count: output.count)) }
        let room = min(output.count - produced, Int(UInt32.max))
        let status = output.withUnsafeMutableBytes { buffer -> Int32 in
            stream.next_out = buffer.bindMemory(to: UInt8.self).baseAddress! + produced
            stream.avail_out = UInt32(room)
            let status = inflate(&stream, Z_NO_FLUSH)
            produced += room - Int(stream.avail_out)
            return status
        }
        switch status {
        case Z_OK:
            continue
        case Z_STREAM_END:
            // Concatenated gzip members (as `cat a.gz b.gz` makes) form one file.
            guard stream.avail_in > 0 else {
                output.removeSubrange(produced...)
                return output
            }
            guard inflateReset(&stream) == Z_OK else { throw failure("zlib could not start the next gzip member") }
        case Z_BUF_ERROR where stream.avail_out == 0:
            continue
        case Z_BUF_ERROR:
            throw failure("gzip stream is truncated (ends after \(produced) uncompressed bytes)")
        default:
            let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
            throw failure("gzip stream is corrupt (\(message))")
        }
    }
}

// MARK: - CSV

/// Parses the table's bytes in place: no per-row strings, so 90 MB of CSV reads in well under
/// a second. Every check here is cheap; anything wrong stops the load with the line and reason.
private struct CSVReader {
    static let header = "idx,hash,num_vertices,num_edges,adjacency_rowmajor,ops,trainable_params,flops,test_acc_108ep_repeat0"
    static let columnCount = 9
    static let opNames: [(op: NASBench101Op, bytes: [UInt8])] = NASBench101Op.allCases.map { ($0, Array($0.name.utf8)) }

    let file: String
    let text: UnsafeRawBufferPointer

    /// A field as offsets into `text`.
    struct Field {
        var start: Int
        var end: Int
        var count: Int { end - start }
    }

    func readRows() throws -> Rows {
        var rows = Rows(withValidation: false)
        rows.reserve(text.count / 200)
        var lineStart = 0
        var lineNumber = 0
        var fields = [Field](repeating: Field(start: 0, end: 0), count: Self.columnCount)
        while lineStart < text.count {
            lineNumber += 1
            var lineEnd = lineEnd(from: lineStart)
            let next = lineEnd + 1
            if lineEnd > lineStart && text[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineNumber == 1 {
                let found = String(decoding: UnsafeRawBufferPointer(rebasing: text[lineStart..<lineEnd]), as: UTF8.self)
                guard found == Self.header else {
                    throw TableError(file: file, location: "line 1", problem: "header is '\(found)', expected '\(Self.header)'")
                }
            } else {
                try readRow(Field(start: lineStart, end: lineEnd), fields: &fields, into: &rows) { problem in
                    TableError(file: file, location: "line \(lineNumber)", problem: problem)
                }
            }
            lineStart = next
        }
        if lineNumber == 0 { throw TableError(file: file, location: nil, problem: "the file is empty") }
        return rows
    }

    private func lineEnd(from start: Int) -> Int {
        let base = text.baseAddress!
        guard let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), text.count - start) else { return text.count }
        return UnsafeRawPointer(newline) - base
    }

    private func readRow(_ line: Field, fields: inout [Field], into rows: inout Rows,
                         error: (String) -> TableError) throws {
        guard line.count > 0 else { throw error("the line is empty") }
        var fieldCount = 0
        var start = line.start
        for position in line.start...line.end where position == line.end || text[position] == UInt8(ascii: ",") {
            if fieldCount < Self.columnCount { fields[fieldCount] = Field(start: start, end: position) }
            fieldCount += 1
            start = position + 1
        }
        guard fieldCount == Self.columnCount else {
            throw error("has \(fieldCount) columns, expected \(Self.columnCount)")
        }
        let (idxField, hashField, verticesField, edgesField) = (fields[0], fields[1], fields[2], fields[3])
        let (adjacencyField, opsField, paramsField, flopsField, accuracyField) = (fields[4], fields[5], fields[6], fields[7], fields[8])

        guard integer(idxField) != nil else { throw error("idx '\(string(idxField))' is not a whole number") }
        guard let hash = MD5Value(hex: bytes(hashField)) else {
            throw error("hash '\(string(hashField))' is not 32 lowercase hex digits")
        }
        guard let vertexCount = integer(verticesField), (2...NASBench101Cell.maxVertices).contains(vertexCount) else {
            throw error("num_vertices '\(string(verticesField))' is not a whole number in 2...\(NASBench101Cell.maxVertices)")
        }
        guard let statedEdgeCount = integer(edgesField) else {
            throw error("num_edges '\(string(edgesField))' is not a whole number")
        }

        guard adjacencyField.count == vertexCount * vertexCount else {
            throw error("adjacency has \(adjacencyField.count) characters, expected \(vertexCount * vertexCount)")
        }
        var edgeBits: UInt64 = 0
        var edgeCount = 0
        for i in 0..<vertexCount {
            for j in 0..<vertexCount {
                switch text[adjacencyField.start + i * vertexCount + j] {
                case UInt8(ascii: "0"):
                    continue
                case UInt8(ascii: "1"):
                    guard j > i else { throw error("adjacency has an edge \(i) → \(j); the matrix must be strictly upper triangular") }
                    edgeBits |= PackedNASBench101Cell.bit(from: i, to: j)
                    edgeCount += 1
                case let other:
                    throw error("adjacency character \(i * vertexCount + j + 1) is '\(Character(Unicode.Scalar(other)))', expected 0 or 1")
                }
            }
        }
        guard edgeCount == statedEdgeCount else {
            throw error("adjacency has \(edgeCount) edges but num_edges is \(statedEdgeCount)")
        }

        var opCodes: UInt64 = 0
        var opCount = 0
        var nameStart = opsField.start
        for position in opsField.start...opsField.end where position == opsField.end || text[position] == UInt8(ascii: "|") {
            let name = Field(start: nameStart, end: position)
            guard let op = op(named: name) else { throw error("unknown op '\(string(name))'") }
            if opCount < vertexCount { opCodes |= UInt64(op.rawValue) << UInt64(8 * opCount) }
            opCount += 1
            nameStart = position + 1
        }
        guard opCount == vertexCount else { throw error("ops has \(opCount) names, expected \(vertexCount)") }
        let cell = PackedNASBench101Cell(opCodes: opCodes, edgeBits: edgeBits)
        if let problem = NASBench101Cell.specProblem(vertexCount: vertexCount, edgeCount: edgeCount, op: {
            NASBench101Op(rawValue: cell.opCode(at: $0))!
        }) {
            throw error("invalid cell: \(problem)")
        }
        guard cell.isPruned else { throw error("cell is not pruned: some vertex is not on an input → output path") }

        guard let parameters = integer(paramsField), parameters <= Int(Int32.max) else {
            throw error("trainable_params '\(string(paramsField))' is not a whole number below 2³¹")
        }
        guard integer(flopsField) != nil else { throw error("flops '\(string(flopsField))' is not a whole number") }
        guard let accuracy = unitInterval(accuracyField) else {
            throw error("test_acc_108ep_repeat0 '\(string(accuracyField))' is not a number in [0, 1]")
        }
        rows.append(cell: cell, hash: hash, test: accuracy, parameters: Int32(parameters))
    }

    private func bytes(_ field: Field) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: text[field.start..<field.end])
    }

    /// For messages only; cut short so a garbage line cannot flood the terminal.
    private func string(_ field: Field) -> String {
        let shown = Field(start: field.start, end: min(field.end, field.start + 60))
        return String(decoding: bytes(shown), as: UTF8.self) + (shown.end < field.end ? "…" : "")
    }

    private func integer(_ field: Field) -> Int? {
        guard field.count > 0 && field.count <= 18 else { return nil }
        var value = 0
        for position in field.start..<field.end {
            let digit = Int(text[position]) - Int(UInt8(ascii: "0"))
            guard digit >= 0 && digit <= 9 else { return nil }
            value = value * 10 + digit
        }
        return value
    }

    /// A plain decimal in [0, 1]. `strtod` rounds correctly (the values are float32s printed
    /// to 17 digits, so they come back exactly); the first-character check keeps it from
    /// accepting what the format does not (spaces, signs, "nan", "inf", hex).
    private func unitInterval(_ field: Field) -> Float? {
        guard field.count > 0 else { return nil }
        let first = text[field.start]
        guard first == UInt8(ascii: ".") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return nil }
        let start = (text.baseAddress! + field.start).assumingMemoryBound(to: CChar.self)
        var end: UnsafeMutablePointer<CChar>?
        let value = strtod(start, &end)
        guard let end, UnsafeRawPointer(end) == UnsafeRawPointer(start) + field.count else { return nil }
        guard value >= 0 && value <= 1 else { return nil }
        return Float(value)
    }

    private func op(named name: Field) -> NASBench101Op? {
        for candidate in Self.opNames where candidate.bytes.count == name.count {
            let same = candidate.bytes.withUnsafeBytes { memcmp($0.baseAddress!, text.baseAddress! + name.start, name.count) == 0 }
            if same { return candidate.op }
        }
        return nil
    }
}
