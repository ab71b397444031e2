import CZlib
import Foundation
import XCTest
@testable import Engine

/// Rows copied verbatim from /work/shared/data/nasbench101.csv.gz, whose `hash` column was
/// made by the official NAS-Bench-101 code: the fingerprints here are checked against it.
private enum RealRows {
    static let header = "idx,hash,num_vertices,num_edges,adjacency_rowmajor,ops,trainable_params,flops,test_acc_108ep_repeat0"
    static let row0 = "0,00005c142e6f48ac74fdcf73e3439874,7,9,0100110001000000010010000010000001000000010000000,input|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|output,8555530,1266914304,0.9211738705635071"
    static let row1 = "1,0000718c96730a92ea6d5242f8ce77e2,7,8,0100000001000000010000000111000001000000010000000,input|conv1x1-bn-relu|conv1x1-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|conv3x3-bn-relu|output,5878154,867767296,0.8916265964508057"
    static let row23 = "23,00040b38293651f17fb665401c671bbb,6,9,010110001001000100000011000001000000,input|conv3x3-bn-relu|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|output,3984576,593785472,0.9116586446762085"
    static let row167 = "167,001a6fcc8b38cbc515be788a86bdc804,4,4,0110001000010000,input|maxpool3x3|maxpool3x3|output,1756298,274994176,0.885817289352417"
    static let row188 = "188,001ea832563f8d635ef7d0af25926274,5,9,0111100111000100000100000,input|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|output,6843402,1023644672,0.926682710647583"
    static let row6992 = "6992,043721b9c7fe8c5fad811d47d83132ec,2,1,0100,input|output,882570,139400192,0.8410456776618958"
    static let row16569 = "16569,09fc2d10bdd6225e167a6f81a22a3f06,3,3,011001000,input|conv1x1-bn-relu|output,2793866,427365376,0.8358373641967773"
    static let best = "307498,ba0a27cafe7d648aa57f7d5dd64c0b48,7,9,0110101000001000010000000100000001000000010000000,input|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|output,41721738,6139876352,0.9466145634651184"
    static let all = [row0, row1, row23, row167, row188, row6992, row16569, best]

    /// (hash, adjacency, ops) of a row, split by hand rather than by the code under test.
    static func parts(_ row: String) -> (hash: String, adjacency: [UInt8], ops: [NASBench101Op]) {
        let columns = row.split(separator: ",").map(String.init)
        return (columns[1], bits(columns[4]), columns[5].split(separator: "|").map { NASBench101Op(name: String($0))! })
    }
}

private func bits(_ text: String) -> [UInt8] { text.map { $0 == "1" ? 1 : 0 } }

final class NASBench101Tests: XCTestCase {
    // MARK: Ops and cells

    func testOpNamesAndComparatorIds() {
        let expected: [(NASBench101Op, String, UInt8)] = [
            (.input, "input", 1), (.conv1x1, "conv1x1-bn-relu", 2), (.conv3x3, "conv3x3-bn-relu", 3),
            (.maxpool3x3, "maxpool3x3", 4), (.output, "output", 5),
        ]
        for (op, name, id) in expected {
            XCTAssertEqual(op.name, name)
            XCTAssertEqual(NASBench101Op(name: name), op)
            XCTAssertEqual(op.rawValue, id)
        }
        XCTAssertNil(NASBench101Op(name: "conv5x5-bn-relu"))
        XCTAssertNil(NASBench101Op(name: "dummy"))
    }

    func testFingerprintsMatchOfficialHashes() throws {
        for row in RealRows.all {
            let (hash, adjacency, ops) = RealRows.parts(row)
            let cell = try NASBench101Cell.pruning(adjacency: adjacency, ops: ops)
            XCTAssertEqual(cell.vertexCount, ops.count, "a stored cell is already pruned: \(hash)")
            XCTAssertEqual(cell.adjacency, adjacency)
            XCTAssertEqual(cell.fingerprint, hash)
        }
    }

    func testFingerprintIgnoresVertexOrder() throws {
        let (hash, adjacency, ops) = RealRows.parts(RealRows.row0)
        // Vertex 4 only hangs between input and output, so it can move to position 1 and the
        // matrix stays upper triangular: the same graph, spelled differently.
        let order = [0, 4, 1, 2, 3, 5, 6]
        let n = ops.count
        var relabelled = [UInt8](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n { relabelled[i * n + j] = adjacency[order[i] * n + order[j]] }
        }
        let cell = try NASBench101Cell.pruning(adjacency: relabelled, ops: order.map { ops[$0] })
        XCTAssertNotEqual(cell.adjacency, adjacency)
        XCTAssertEqual(cell.fingerprint, hash)
    }

    func testPruningDropsDanglingVertices() throws {
        let (hash, expectedAdjacency, expectedOps) = RealRows.parts(RealRows.row167)
        // Row 167 (0→1, 0→2, 1→2, 2→3) with an extra vertex inserted at index 2.
        // Reached from the input but feeding nothing:
        let deadEnd = bits("01110" + "00010" + "00000" + "00001" + "00000")
        // Feeding the output but unreachable from the input:
        let unfed = bits("01010" + "00010" + "00001" + "00001" + "00000")
        for adjacency in [deadEnd, unfed] {
            let cell = try NASBench101Cell.pruning(adjacency: adjacency,
                                                   ops: [.input, .maxpool3x3, .conv3x3, .maxpool3x3, .output])
            XCTAssertEqual(cell.ops, expectedOps)
            XCTAssertEqual(cell.adjacency, expectedAdjacency)
            XCTAssertEqual(cell.vertexCount, 4)
            XCTAssertEqual(cell.edgeCount, 4)
            XCTAssertEqual(cell.fingerprint, hash)
        }
    }

    func testEightVerticesThatPruneToSevenAreValid() throws {
        let (hash, adjacency, ops) = RealRows.parts(RealRows.row0)
        // Row 0 plus a last-but-one vertex that only receives from the input.
        var bigger = [UInt8](repeating: 0, count: 64)
        for i in 0..<7 {
            for j in 0..<7 {
                let row = i == 6 ? 7 : i, column = j == 6 ? 7 : j
                bigger[row * 8 + column] = adjacency[i * 7 + j]
            }
        }
        bigger[0 * 8 + 6] = 1
        let cell = try NASBench101Cell.pruning(adjacency: bigger, ops: Array(ops[0..<6]) + [.conv1x1, .output])
        XCTAssertEqual(cell.fingerprint, hash)
    }

    func testInvalidSpecsAreRejectedWithTheirReason() {
        func problem(_ adjacency: String, _ ops: [NASBench101Op]) -> NASBench101Cell.InvalidSpec? {
            do {
                _ = try NASBench101Cell.pruning(adjacency: bits(adjacency), ops: ops)
                return nil
            } catch {
                return error
            }
        }
        let middle: [NASBench101Op] = [.input, .conv3x3, .conv1x1, .output]
        XCTAssertEqual(problem("0100" + "0000" + "0001" + "0000", middle), .inputNotConnectedToOutput)
        XCTAssertEqual(problem("0000" + "0000" + "0000" + "0000", middle), .inputNotConnectedToOutput)
        XCTAssertEqual(problem("0", [.input]), .inputNotConnectedToOutput)
        XCTAssertEqual(problem("0100" + "0010" + "0001" + "0000", [.conv3x3, .conv3x3, .conv1x1, .output]), .firstOpNotInput)
        XCTAssertEqual(problem("0100" + "0010" + "0001" + "0000", [.input, .conv3x3, .conv1x1, .conv1x1]), .lastOpNotOutput)
        XCTAssertEqual(problem("0100" + "0010" + "0001" + "0000", [.input, .output, .conv1x1, .output]),
                       .notAnIntermediateOp(vertex: 1, .output))
        XCTAssertEqual(problem("0100" + "1010" + "0001" + "0000", middle), .notStrictlyUpperTriangular(row: 1, column: 0))
        XCTAssertEqual(problem("0100" + "0110" + "0001" + "0000", middle), .notStrictlyUpperTriangular(row: 1, column: 1))
        XCTAssertEqual(problem("010", middle), .sizeMismatch(adjacencyCount: 3, opCount: 4))

        var notBinary = bits("0100" + "0010" + "0001" + "0000")
        notBinary[1] = 2
        XCTAssertThrowsError(try NASBench101Cell.pruning(adjacency: notBinary, ops: middle)) { error in
            XCTAssertEqual(error as? NASBench101Cell.InvalidSpec, .notBinary(row: 0, column: 1))
        }

        // A chain 0→1→…→6 plus four shortcuts from the input: every vertex stays, 10 edges.
        var tenEdges = [UInt8](repeating: 0, count: 49)
        for i in 0..<6 { tenEdges[i * 7 + i + 1] = 1 }
        for j in 2...5 { tenEdges[j] = 1 }
        let seven: [NASBench101Op] = [.input, .conv3x3, .conv3x3, .conv1x1, .maxpool3x3, .conv3x3, .output]
        XCTAssertThrowsError(try NASBench101Cell.pruning(adjacency: tenEdges, ops: seven)) { error in
            XCTAssertEqual(error as? NASBench101Cell.InvalidSpec, .tooManyEdges(10))
        }
        // Eight vertices all on the path: too many even though the edges are few.
        var chain8 = [UInt8](repeating: 0, count: 64)
        for i in 0..<7 { chain8[i * 8 + i + 1] = 1 }
        XCTAssertThrowsError(try NASBench101Cell.pruning(adjacency: chain8, ops: [.input] + Array(repeating: .conv3x3, count: 6) + [.output])) { error in
            XCTAssertEqual(error as? NASBench101Cell.InvalidSpec, .tooManyVertices(8))
        }
    }

    func testGraphEncodingPadsAfterTheRealNodes() throws {
        let (_, adjacency, ops) = RealRows.parts(RealRows.row167)
        let encoding = try NASBench101Cell.pruning(adjacency: adjacency, ops: ops).graphEncoding
        XCTAssertEqual(encoding.ops, [1, 4, 4, 5, 0, 0, 0])
        var expected = [UInt8](repeating: 0, count: 49)
        for (i, j) in [(0, 1), (0, 2), (1, 2), (2, 3)] { expected[i * 7 + j] = 1 }
        XCTAssertEqual(encoding.adjacency, expected)
        XCTAssertTrue(encoding.hasEdge(from: 2, to: 3))
        XCTAssertFalse(encoding.hasEdge(from: 3, to: 2))
    }

    func testParameterCountsMatchTheBenchmarksColumn() throws {
        for row in RealRows.all {
            let (_, adjacency, ops) = RealRows.parts(row)
            let cell = try NASBench101Cell.pruning(adjacency: adjacency, ops: ops)
            XCTAssertEqual(cell.trainableParameters, Int(row.split(separator: ",")[6])!, row)
        }
    }

    func testVertexChannelsSplitTheOutputAmongItsFeeders() throws {
        // Four 3×3 convolutions in parallel, each feeding the output: a quarter of the channels each.
        var parallel = [UInt8](repeating: 0, count: 36)
        for v in 1...4 { parallel[0 * 6 + v] = 1; parallel[v * 6 + 5] = 1 }
        let wide = try NASBench101Cell.pruning(adjacency: parallel, ops: [.input] + Array(repeating: .conv3x3, count: 4) + [.output])
        XCTAssertEqual(wide.vertexChannels(input: 128, output: 128), [128, 32, 32, 32, 32, 128])
        XCTAssertEqual(wide.graphEncoding.widths, [128, 32, 32, 32, 32, 128, 128])
        // A chain: only the last vertex feeds the output, so every vertex takes all 128.
        var chain = [UInt8](repeating: 0, count: 36)
        for v in 0..<5 { chain[v * 6 + v + 1] = 1 }
        let deep = try NASBench101Cell.pruning(adjacency: chain, ops: [.input] + Array(repeating: .conv3x3, count: 4) + [.output])
        XCTAssertEqual(deep.graphEncoding.widths, [128, 128, 128, 128, 128, 128, 128])
        // Three feeders of 128: 43, 43, 42 (the remainder goes to the first); a vertex that only
        // feeds a feeder takes its successor's width.
        var split = [UInt8](repeating: 0, count: 36)
        for (i, j) in [(0, 1), (1, 2), (0, 3), (0, 4), (2, 5), (3, 5), (4, 5)] { split[i * 6 + j] = 1 }
        let mixed = try NASBench101Cell.pruning(adjacency: split, ops: [.input, .conv1x1, .conv3x3, .maxpool3x3, .conv3x3, .output])
        XCTAssertEqual(mixed.vertexChannels(input: 128, output: 128), [128, 43, 43, 43, 42, 128])
    }

    // MARK: The real table

    private static let realTablePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/data/nasbench101.csv.gz").path

    func testRealTable() throws {
        let path = Self.realTablePath
        try XCTSkipUnless(FileManager.default.fileExists(atPath: path), "no benchmark table at \(path)")
        let started = Date()
        let table = try NASBench101Table.load(path: path)
        print("NASBench101Table: loaded \(table.count) rows in \(String(format: "%.3f", Date().timeIntervalSince(started))) s")

        XCTAssertEqual(table.count, 423_624)
        XCTAssertEqual(table.hash(at: 0), "00005c142e6f48ac74fdcf73e3439874")
        XCTAssertEqual(table.hash(at: table.count - 1), "ffff76fafa7b0cdf545fd7feee9c8bf9")
        for row in RealRows.all {
            let (hash, adjacency, ops) = RealRows.parts(row)
            let index = try XCTUnwrap(table.index(ofFingerprint: hash))
            XCTAssertEqual(String(index), String(row.prefix { $0 != "," }))
            XCTAssertEqual(table.cell(at: index).ops, ops)
            XCTAssertEqual(table.cell(at: index).adjacency, adjacency)
            XCTAssertEqual(table.index(of: table.cell(at: index)), index)
            XCTAssertEqual(Double(table.testAccuracy(at: index)), Double(row.split(separator: ",")[8])!, accuracy: 1e-7)
            XCTAssertEqual(table.label(at: index), table.testAccuracy(at: index), "the CSV has only test accuracy")
        }
        // The channel split behind the comparator's node widths reproduces every parameter count.
        let wrongParameterCounts = (0..<table.count).filter { table.trainableParameters(at: $0) != table.cell(at: $0).trainableParameters }
        XCTAssertEqual(wrongParameterCounts.count, 0, "first rows whose parameter count differs: \(wrongParameterCounts.prefix(5))")
        XCTAssertNil(table.index(ofFingerprint: "0123456789abcdef0123456789abcdef"))
        XCTAssertNil(table.index(ofFingerprint: "not a hash"))

        let sample = Array(stride(from: 0, to: table.count, by: 211))
        XCTAssertGreaterThan(sample.count, 2000)
        var mismatches = [Int]()
        for index in sample {
            mismatches += table.verifyFingerprints(range: index..<(index + 1))
            XCTAssertEqual(table.cell(at: index).fingerprint, table.hash(at: index))
        }
        XCTAssertEqual(mismatches, [])
        // The CLI checks disjoint ranges of one shared table from several threads.
        DispatchQueue.concurrentPerform(iterations: 4) { part in
            XCTAssertEqual(table.verifyFingerprints(range: (part * 500)..<(part * 500 + 500)), [])
        }

        let best = (0..<table.count).max { table.testAccuracy(at: $0) < table.testAccuracy(at: $1) }!
        XCTAssertEqual(table.rank(at: best), 1)
        XCTAssertEqual(table.hash(at: best), "ba0a27cafe7d648aa57f7d5dd64c0b48")
        XCTAssertEqual(table.testAccuracy(at: best), 0.94661, accuracy: 1e-5)
        XCTAssertEqual(table.percentile(at: best), 100.0 / 423_624, accuracy: 1e-12)
        for (a, b) in zip(sample, sample.dropFirst()) {
            let (accuracyA, accuracyB) = (table.testAccuracy(at: a), table.testAccuracy(at: b))
            // a < b in row order, so on equal accuracy a ranks first.
            XCTAssertEqual(table.rank(at: a) < table.rank(at: b), accuracyA >= accuracyB, "rows \(a), \(b)")
        }
        XCTAssertEqual(Set(sample.map(table.rank)).count, sample.count, "ranks are a permutation")

        let split = table.split(seed: 2021)
        XCTAssertEqual(split.train.count, 423)
        XCTAssertEqual(split.validation.count, 100)
        XCTAssertTrue(Set(split.train).isDisjoint(with: split.validation))
        XCTAssertEqual(Set(split.train).count, 423)
        XCTAssertTrue((split.train + split.validation).allSatisfy { (0..<table.count).contains($0) })
        let again = table.split(seed: 2021)
        XCTAssertEqual(again.train, split.train)
        XCTAssertEqual(again.validation, split.validation)
        XCTAssertNotEqual(table.split(seed: 2022).train, split.train)

        XCTAssertEqual(table.contentFingerprint.count, 64)
    }

    // MARK: Small files

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nb101-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func writeCSV(_ name: String, rows: [String], header: String = RealRows.header) throws -> String {
        try write(name, Array(([header] + rows).joined(separator: "\n").appending("\n").utf8))
    }

    /// gzip made by zlib itself (windowBits 15 + 16), independent of the loader's inflate.
    private func gzip(_ bytes: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        XCTAssertEqual(deflateInit2_(&stream, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                     ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)), Z_OK)
        var input = bytes
        var output = [UInt8](repeating: 0, count: bytes.count + 1024)
        let written = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = UInt32(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = UInt32(target.count)
                XCTAssertEqual(deflate(&stream, Z_FINISH), Z_STREAM_END)
                return target.count - Int(stream.avail_out)
            }
        }
        deflateEnd(&stream)
        return Array(output[0..<written])
    }

    private func loadError(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let table = try NASBench101Table.load(path: path)
            XCTFail("loaded \(table.count) rows from a broken file", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error is TableError, "\(error)", file: file, line: line)
            return String(describing: error)
        }
    }

    func testSmallCSVLoadsPlainAndGzipped() throws {
        let rows = [RealRows.row0, RealRows.row23, RealRows.row6992, RealRows.best]
        let text = Array(([RealRows.header] + rows).joined(separator: "\n").utf8) + [10]
        let plain = try NASBench101Table.load(path: try write("small.csv", text))
        let gzipped = try NASBench101Table.load(path: try write("small.csv.gz", gzip(text)))
        // Two gzip members back to back, as `cat a.gz b.gz` produces.
        let cut = text.count / 2
        let members = try NASBench101Table.load(path: try write("members.csv.gz", gzip(Array(text[..<cut])) + gzip(Array(text[cut...]))))
        for table in [plain, gzipped, members] {
            XCTAssertEqual(table.count, 4)
            XCTAssertEqual((0..<4).map(table.hash), rows.map { RealRows.parts($0).hash })
            XCTAssertEqual((0..<4).map(table.rank), [2, 3, 4, 1])
            XCTAssertEqual(table.percentile(at: 3), 25)
            XCTAssertEqual(table.verifyFingerprints(range: 0..<4), [])
            XCTAssertEqual(table.contentFingerprint, plain.contentFingerprint)
        }
        // A CRLF file reads the same.
        let crlf = Array(([RealRows.header] + rows).joined(separator: "\r\n").utf8)
        XCTAssertEqual(try NASBench101Table.load(path: try write("crlf.csv", crlf)).contentFingerprint, plain.contentFingerprint)

        let otherAccuracy = rows[0].replacingOccurrences(of: "0.9211738705635071", with: "0.9311738705635071")
        let changed = try NASBench101Table.load(path: try writeCSV("changed.csv", rows: [otherAccuracy] + rows[1...]))
        XCTAssertNotEqual(changed.contentFingerprint, plain.contentFingerprint)
    }

    func testWrongStoredHashIsFoundByVerification() throws {
        let wrong = RealRows.row23.replacingOccurrences(of: "00040b38293651f17fb665401c671bbb", with: "00040b38293651f17fb665401c671bbc")
        let table = try NASBench101Table.load(path: try writeCSV("wrong.csv", rows: [RealRows.row0, wrong, RealRows.best]))
        XCTAssertEqual(table.verifyFingerprints(range: 0..<3), [1])
    }

    func testBrokenGzipIsAnErrorNotACrash() throws {
        let text = Array(([RealRows.header] + RealRows.all).joined(separator: "\n").utf8)
        let compressed = gzip(text)
        let truncated = try write("truncated.csv.gz", Array(compressed[0..<(compressed.count / 2)]))
        XCTAssertTrue(loadError(truncated).hasPrefix("\(truncated): gzip stream is truncated"), loadError(truncated))
        let noTrailer = try write("no-trailer.csv.gz", Array(compressed.dropLast(4)))
        XCTAssertTrue(loadError(noTrailer).hasPrefix("\(noTrailer): gzip stream is truncated"))

        var corrupt = compressed
        for offset in stride(from: 20, to: corrupt.count - 20, by: 7) { corrupt[offset] ^= 0x5A }
        let corruptPath = try write("corrupt.csv.gz", corrupt)
        XCTAssertTrue(loadError(corruptPath).hasPrefix("\(corruptPath): gzip stream is corrupt"), loadError(corruptPath))
    }

    func testCSVRowErrorsNameTheLineAndTheProblem() throws {
        let row0 = RealRows.row0
        let cases: [(rows: [String], expected: String)] = [
            ([row0, RealRows.best.replacingOccurrences(of: "conv1x1-bn-relu", with: "conv5x5-bn-relu")],
             "line 3: unknown op 'conv5x5-bn-relu'"),
            ([row0.replacingOccurrences(of: ",1266914304", with: "")], "line 2: has 8 columns, expected 9"),
            ([row0 + ",extra"], "line 2: has 10 columns, expected 9"),
            ([row0.replacingOccurrences(of: ",0100110001", with: ",0120110001")],
             "line 2: adjacency character 3 is '2', expected 0 or 1"),
            ([row0.replacingOccurrences(of: ",0100110001", with: ",100110001")],
             "line 2: adjacency has 48 characters, expected 49"),
            ([RealRows.row6992.replacingOccurrences(of: ",0100,", with: ",0110,")],
             "line 2: adjacency has an edge 1 → 0; the matrix must be strictly upper triangular"),
            ([row0.replacingOccurrences(of: ",7,9,", with: ",7,8,")], "line 2: adjacency has 9 edges but num_edges is 8"),
            ([row0.replacingOccurrences(of: ",7,9,", with: ",8,9,")], "line 2: num_vertices '8' is not a whole number in 2...7"),
            ([row0.replacingOccurrences(of: "|conv1x1-bn-relu|output", with: "|output")], "line 2: ops has 6 names, expected 7"),
            ([row0.replacingOccurrences(of: "input|conv3x3", with: "output|conv3x3")],
             "line 2: invalid cell: first op is not input"),
            ([row0.replacingOccurrences(of: "0.9211738705635071", with: "1.5")],
             "line 2: test_acc_108ep_repeat0 '1.5' is not a number in [0, 1]"),
            ([row0.replacingOccurrences(of: "0.9211738705635071", with: "nan")],
             "line 2: test_acc_108ep_repeat0 'nan' is not a number in [0, 1]"),
            ([row0.replacingOccurrences(of: "0.9211738705635071", with: "0.92x")],
             "line 2: test_acc_108ep_repeat0 '0.92x' is not a number in [0, 1]"),
            ([row0.replacingOccurrences(of: "00005c142e6f48ac74fdcf73e3439874", with: "00005C142E6F48AC74FDCF73E3439874")],
             "line 2: hash '00005C142E6F48AC74FDCF73E3439874' is not 32 lowercase hex digits"),
            ([row0, RealRows.row1, row0], "line 4: hash 00005c142e6f48ac74fdcf73e3439874 repeats the one at line 2"),
            // Row 167's cell with an extra dead-end vertex: valid, but not pruned as the file promises.
            (["5,001a6fcc8b38cbc515be788a86bdc804,5,5,0111000010000000000100000,input|maxpool3x3|conv3x3-bn-relu|maxpool3x3|output,1,1,0.5"],
             "line 2: cell is not pruned: some vertex is not on an input → output path"),
            ([row0, ""], "line 3: the line is empty"),
        ]
        for (index, testCase) in cases.enumerated() {
            let path = try writeCSV("case\(index).csv", rows: testCase.rows)
            XCTAssertEqual(loadError(path), "\(path): \(testCase.expected)")
        }

        let badHeader = try writeCSV("header.csv", rows: [row0], header: "idx,hash,vertices")
        XCTAssertEqual(loadError(badHeader), "\(badHeader): line 1: header is 'idx,hash,vertices', expected '\(RealRows.header)'")
        let headerOnly = try writeCSV("empty.csv", rows: [])
        XCTAssertEqual(loadError(headerOnly), "\(headerOnly): the table has no rows")
        let missing = scratch.appendingPathComponent("missing.csv").path
        XCTAssertEqual(loadError(missing), "\(missing): cannot read the file")
        let unknownKind = try write("table.txt", [])
        XCTAssertTrue(loadError(unknownKind).contains("unknown table format"))
    }

    // MARK: The original CTNAS JSON

    func testJSONLoadsAndLabelsWithValidationAccuracy() throws {
        let json = """
        [
          {"matrix": [[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
           "ops": ["input", "maxpool3x3", "maxpool3x3", "output"],
           "n_params": 1756298, "training_time": 1200.5, "train_accuracy": 1.0,
           "validation_accuracy": 0.8912, "test_accuracy": 0.8858, "hash_": "001a6fcc8b38cbc515be788a86bdc804", "rank": 7},
          {"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"],
           "validation_accuracy": 0.84, "test_accuracy": 0.8410}
        ]
        """
        let table = try NASBench101Table.load(path: try write("nas_bench.json", Array(json.utf8)))
        XCTAssertEqual(table.count, 2)
        XCTAssertEqual(table.label(at: 0), 0.8912)
        XCTAssertEqual(table.testAccuracy(at: 0), 0.8858)
        XCTAssertEqual(table.label(at: 1), 0.84)
        XCTAssertEqual(table.rank(at: 0), 1, "rank comes from test accuracy; the file's rank is ignored")
        XCTAssertEqual(table.hash(at: 1), RealRows.parts(RealRows.row6992).hash, "a missing hash_ is computed")
        XCTAssertEqual(table.index(ofFingerprint: "001a6fcc8b38cbc515be788a86bdc804"), 0)
        XCTAssertEqual(table.verifyFingerprints(range: 0..<2), [])
        XCTAssertEqual(table.cell(at: 0).ops, [.input, .maxpool3x3, .maxpool3x3, .output])
    }

    func testJSONEntryErrorsNameTheEntry() throws {
        let good = #"{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "validation_accuracy": 0.84, "test_accuracy": 0.84}"#
        let cases: [(entry: String, expected: String)] = [
            (#"{"matrix": [[0, 1], [0, 0]], "ops": ["input", "outpt"], "validation_accuracy": 0.8, "test_accuracy": 0.8}"#,
             "unknown op 'outpt'"),
            (#"{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "test_accuracy": 0.8}"#,
             "validation_accuracy is missing or not a number"),
            (#"{"matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": ["input", "output", "output"], "validation_accuracy": 0.8, "test_accuracy": 0.8}"#,
             "invalid cell: no path from input to output"),
            (#"{"matrix": [[0, 1, 1], [0, 0, 0], [0, 0, 0]], "ops": ["input", "conv3x3-bn-relu", "output"], "validation_accuracy": 0.8, "test_accuracy": 0.8}"#,
             "cell is not pruned: some vertex is not on an input → output path"),
            (#"{"matrix": [[0, 2], [0, 0]], "ops": ["input", "output"], "validation_accuracy": 0.8, "test_accuracy": 0.8}"#,
             "matrix[0][1] is not 0 or 1"),
            (#"{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "validation_accuracy": 0.8, "test_accuracy": 94.6}"#,
             "test_accuracy 94.6 is outside [0, 1]"),
        ]
        for (index, testCase) in cases.enumerated() {
            let path = try write("case\(index).json", Array("[\(good), \(testCase.entry)]".utf8))
            XCTAssertEqual(loadError(path), "\(path): entry 1: \(testCase.expected)")
        }
        let notJSON = try write("broken.json", Array("[{".utf8))
        XCTAssertTrue(loadError(notJSON).hasPrefix("\(notJSON): not valid JSON"))
    }
}
