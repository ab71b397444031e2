import Engine
import Foundation
import Protocol
import XCTest

final class WireTests: XCTestCase {

    // MARK: Round trips

    func testRoundTripEveryMessageType() throws {
        var g = SeededGenerator(seed: 1)
        for _ in 0..<20 {
            for envelope in Samples.everyKind(&g, maxList: 40) {
                XCTAssertEqual(try Wire.decode(Wire.encode(envelope)), envelope)
            }
        }
    }

    func testRoundTripEdgeCases() throws {
        let longId = String(repeating: "é", count: Wire.maxStringBytes / 2)  // 2 bytes each: exactly the limit
        XCTAssertEqual(longId.utf8.count, Wire.maxStringBytes)
        let full16 = GraphEncoding(ops: (0..<16).map { UInt8($0) }, adjacency: [UInt8](repeating: 1, count: 256))
        let single = GraphEncoding(ops: [255], adjacency: [1])
        let extremes: [Float] = [0, -0.0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                 .leastNonzeroMagnitude, .leastNormalMagnitude, 1, -1]
        let messages: [Message] = [
            .hello(Hello(workerId: longId, threads: .max, engineVersion: .max, capabilities: .max)),
            .hello(Hello(workerId: "", threads: 0, engineVersion: 0)),
            .disconnect(reason: ""),
            .disconnect(reason: "shutting down 🛑\u{0}tab\t"),
            .welcome(Welcome(heartbeatIntervalMs: 0, livenessMs: .max)),
            .heartbeat,
            .standby,
            .weights(Weights(kind: .comparator, version: 0, parameters: [])),
            .weights(Weights(kind: .controller, version: .max, parameters: extremes)),
            .job(Job(jobId: .max, payload: .score(ScoreJob(comparatorVersion: 0, cells: [], pairs: [])))),
            .job(Job(jobId: 0, payload: .score(ScoreJob(
                comparatorVersion: 1, cells: [full16, single],
                pairs: [CellPair(candidate: 0, reference: 1), CellPair(candidate: 1, reference: 1)])))),
            .job(Job(jobId: 1, payload: .comparatorGradient(ComparatorGradientJob(
                comparatorVersion: 2, cells: [single], pairs: [CellPair(candidate: 0, reference: 0)], targets: [1])))),
            .job(Job(jobId: 2, payload: .comparatorGradient(ComparatorGradientJob(
                comparatorVersion: 2, cells: [], pairs: [], targets: [])))),
            .job(Job(jobId: 3, payload: .policyGradient(PolicyGradientJob(
                controllerVersion: 4, entropyCoefficient: -0.0,
                sequences: [[], [UInt16](repeating: .max, count: Int(UInt16.max))], advantages: Array(extremes.prefix(2)))))),
            .job(Job(jobId: 4, payload: .policyGradient(PolicyGradientJob(
                controllerVersion: 4, entropyCoefficient: 0, sequences: [], advantages: [])))),
            .result(JobResult(jobId: 5, payload: .scores([]))),
            .result(JobResult(jobId: 5, payload: .scores([0, 1, -0.0, 0.5]))),
            .result(JobResult(jobId: 6, payload: .comparatorGradient(ComparatorGradientResult(
                gradient: extremes, pairCount: .max, lossSum: -.greatestFiniteMagnitude, correct: .max)))),
            .result(JobResult(jobId: 7, payload: .policyGradient(PolicyGradientResult(
                gradient: [], sampleCount: 0, logProbabilitySum: .leastNonzeroMagnitude, entropySum: 0)))),
            .error(WorkerError(jobId: 8, code: .max, message: longId)),
        ]
        for (i, message) in messages.enumerated() {
            let envelope = Envelope(requestId: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, message: message)
            let bytes = Wire.encode(envelope)
            XCTAssertEqual(try Wire.decode(bytes), envelope, "message \(i)")
        }
    }

    func testLargeScoreJobRoundTrip() throws {
        var g = SeededGenerator(seed: 2)
        let cells = (0..<10_000).map { _ in Samples.cell(&g) }
        let pairs = (0..<20_000).map { _ in
            CellPair(candidate: UInt32(g.nextInt(below: cells.count)), reference: UInt32(g.nextInt(below: cells.count)))
        }
        let envelope = Envelope(requestId: 9, message: .job(Job(jobId: 10, payload: .score(
            ScoreJob(comparatorVersion: 11, cells: cells, pairs: pairs)))))
        let start = Date()
        let bytes = Wire.encode(envelope)
        let decoded = try Wire.decode(bytes)
        print("10k-cell score job: \(bytes.count) bytes, encode+decode \(Date().timeIntervalSince(start)) s")
        XCTAssertEqual(decoded, envelope)
    }

    // MARK: Golden bytes

    func testGoldenBytes() throws {
        let heartbeat = Envelope(requestId: 0x0102_0304_0506_0708, message: .heartbeat)
        let heartbeatBytes: [UInt8] = [
            0x43, 0x54, 0x4E, 0x53,  // "CTNS"
            0x02, 0x00,  // version 2, LE
            0x03,  // type: heartbeat
            0x00,  // reserved
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // request id, LE
        ]
        XCTAssertEqual(Wire.encode(heartbeat), heartbeatBytes)
        XCTAssertEqual(try Wire.decode(heartbeatBytes), heartbeat)

        // Edges 0→1, 0→2, 1→2 are bits 1, 2, 5 of a 9-bit row-major stream, LSB first.
        let triangle = GraphEncoding(ops: [1, 2, 3], adjacency: [0, 1, 1,
                                                                  0, 0, 1,
                                                                  0, 0, 0], widths: [128, 32, 64])
        let single = GraphEncoding(ops: [7], adjacency: [0])
        let score = Envelope(requestId: 1, message: .job(Job(jobId: 2, payload: .score(ScoreJob(
            comparatorVersion: 3, cells: [triangle, single], pairs: [CellPair(candidate: 1, reference: 0)])))))
        let scoreBytes: [UInt8] = [
            0x43, 0x54, 0x4E, 0x53, 0x02, 0x00, 0x07, 0x00, 1, 0, 0, 0, 0, 0, 0, 0,  // header, type job
            2, 0, 0, 0, 0, 0, 0, 0,  // job id
            0x01,  // job kind: score
            3, 0, 0, 0, 0, 0, 0, 0,  // comparator version
            2, 0, 0, 0,  // cell count
            3, 1, 2, 3, 0x26, 0x00, 128, 32, 64,  // 3 nodes, ops, adjacency bits, widths in 128ths
            1, 7, 0x00, 128,  // 1 node, op, adjacency bits, full width
            1, 0, 0, 0,  // pair count
            1, 0, 0, 0, 0, 0, 0, 0,  // candidate 1, reference 0
        ]
        XCTAssertEqual(Wire.encode(score), scoreBytes)
        XCTAssertEqual(try Wire.decode(scoreBytes), score)

        let result = Envelope(requestId: 4, message: .result(JobResult(jobId: 2, payload: .scores([0.5, 1]))))
        let resultBytes: [UInt8] = [
            0x43, 0x54, 0x4E, 0x53, 0x02, 0x00, 0x08, 0x00, 4, 0, 0, 0, 0, 0, 0, 0,  // header, type result
            2, 0, 0, 0, 0, 0, 0, 0,  // job id
            0x01,  // result kind: scores
            2, 0, 0, 0,  // count
            0x00, 0x00, 0x00, 0x3F,  // 0.5
            0x00, 0x00, 0x80, 0x3F,  // 1.0
        ]
        XCTAssertEqual(Wire.encode(result), resultBytes)
        XCTAssertEqual(try Wire.decode(resultBytes), result)
    }

    // MARK: Specific errors

    func testHeaderErrors() {
        let valid = Wire.encode(Envelope(requestId: 1, message: .heartbeat))
        assertThrows(patched(valid, 0, [0x58]), .badMagic)
        assertThrows(Array("XXXX".utf8), .badMagic)
        assertThrows(patched(valid, 4, [1, 0]), .unsupportedVersion(1))
        assertThrows(patched(valid, 4, [3, 0]), .unsupportedVersion(3))
        assertThrows(patched(valid, 4, [0, 1]), .unsupportedVersion(256))
        assertThrows(patched(valid, 4, [0, 0]), .unsupportedVersion(0))
        assertThrows(patched(valid, 6, [0]), .unknownType(0))
        assertThrows(patched(valid, 6, [200]), .unknownType(200))
        assertThrows(patched(valid, 7, [1]), "reserved")
    }

    func testEveryPrefixIsTruncated() {
        var g = SeededGenerator(seed: 3)
        for envelope in Samples.everyKind(&g, maxList: 6) {
            let bytes = Wire.encode(envelope)
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try Wire.decode(Array(bytes.prefix(length)))) { error in
                    guard case .truncated = error as? WireError else {
                        return XCTFail("prefix \(length) of \(envelope.message): \(error)")
                    }
                }
            }
        }
    }

    func testTrailingBytes() {
        var g = SeededGenerator(seed: 4)
        for envelope in Samples.everyKind(&g, maxList: 6) {
            assertThrows(Wire.encode(envelope) + [0], .trailingBytes(1))
        }
    }

    func testOversize() throws {
        let bytes = Wire.encode(Envelope(requestId: 1, message: .disconnect(reason: "bye")))
        assertThrows(bytes, maxSize: bytes.count - 1, .tooLarge(size: bytes.count, limit: bytes.count - 1))
        XCTAssertNoThrow(try Wire.decode(bytes, maxSize: bytes.count))
        // Zeros would be bad magic, so this also shows the size is checked first.
        let huge = [UInt8](repeating: 0, count: Wire.maxMessageSize + 1)
        assertThrows(huge, .tooLarge(size: huge.count, limit: Wire.maxMessageSize))
    }

    func testPairIndexOutOfRange() {
        let cell = GraphEncoding(ops: [1], adjacency: [0])
        let score = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .score(ScoreJob(
            comparatorVersion: 0, cells: [cell, cell], pairs: [CellPair(candidate: 1, reference: 1)]))))))
        assertThrows(patched(score, score.count - 4, le32(2)), "indexes past")
        assertThrows(patched(score, score.count - 8, le32(.max)), "indexes past")

        let gradient = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .comparatorGradient(
            ComparatorGradientJob(comparatorVersion: 0, cells: [cell], pairs: [CellPair(candidate: 0, reference: 0)],
                                  targets: [0.25]))))))
        // Pairs come before targets: the reference index sits 8 bytes from the end.
        assertThrows(patched(gradient, gradient.count - 8, le32(1)), "indexes past")
    }

    func testCountLargerThanRemainingBytes() {
        // Offsets: header 16, job id 8, job kind 1, version 8 → cell count at 33; 8 bytes follow it,
        // so even 3 cells (4 bytes minimum each) cannot fit.
        let score = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .score(ScoreJob(
            comparatorVersion: 0, cells: [GraphEncoding(ops: [1], adjacency: [0])], pairs: []))))))
        for huge: UInt32 in [.max, 0x8000_0000, 3] {
            assertThrows(patched(score, 33, le32(huge)), matching: { if case .truncated = $0 { true } else { false } })
        }
        // Weights: header 16, kind 1, version 8 → parameter count at 25.
        let weights = Wire.encode(Envelope(requestId: 0, message: .weights(Weights(kind: .comparator, version: 1,
                                                                                  parameters: [1, 2]))))
        assertThrows(patched(weights, 25, le32(.max)), .truncated(needed: 4 * Int(UInt32.max), available: 8))
        assertThrows(patched(weights, 25, le32(3)), .truncated(needed: 12, available: 8))
        // Policy job: header 16, job id 8, kind 1, version 8, entropy 4 → sequence count at 37.
        let policy = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .policyGradient(
            PolicyGradientJob(controllerVersion: 0, entropyCoefficient: 0.01, sequences: [[1, 2]], advantages: [1]))))))
        assertThrows(patched(policy, 37, le32(.max)), matching: { if case .truncated = $0 { true } else { false } })
        // A sequence length past the end of the frame.
        assertThrows(patched(policy, 41, [0xFF, 0xFF]), matching: { if case .truncated = $0 { true } else { false } })
    }

    func testCellErrors() {
        let triangle = GraphEncoding(ops: [1, 2, 3], adjacency: [UInt8](repeating: 0, count: 9))
        let score = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .score(ScoreJob(
            comparatorVersion: 0, cells: [triangle], pairs: []))))))
        // Cell starts at 37: node count, 3 ops at 38..<41, adjacency bytes at 41 and 42; bit 0 of 42 is the last edge.
        XCTAssertNoThrow(try Wire.decode(patched(score, 42, [0x01])))
        for padding: UInt8 in [0x02, 0x80, 0xFE] {
            assertThrows(patched(score, 42, [padding]), "padding")
        }
        assertThrows(patched(score, 37, [0]), "nodes")
        assertThrows(patched(score, 37, [17]), "nodes")
        // Widths at 43..<46, in 1...128.
        XCTAssertEqual(try Wire.decode(patched(score, 43, [1, 64, 128])), Envelope(requestId: 0, message: .job(Job(jobId: 0,
            payload: .score(ScoreJob(comparatorVersion: 0, cells: [GraphEncoding(ops: [1, 2, 3], adjacency: [UInt8](repeating: 0, count: 9),
                                                                                  widths: [1, 64, 128])], pairs: []))))))
        for width: UInt8 in [0, 129, 255] {
            assertThrows(patched(score, 44, [width]), "width")
        }
    }

    func testInvalidUTF8() {
        let hello = Wire.encode(Envelope(requestId: 0, message: .hello(Hello(workerId: "abcd", threads: 2,
                                                                            engineVersion: 1))))
        // Worker id bytes start at 18 (header 16, length 2).
        for bad: [UInt8] in [[0xFF], [0xC3, 0x28], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x61, 0x61, 0x61, 0xE2]] {
            assertThrows(patched(hello, 18, bad), "UTF-8")
        }
        let error = Wire.encode(Envelope(requestId: 0, message: .error(WorkerError(jobId: 1, code: 2, message: "xy"))))
        assertThrows(patched(error, error.count - 1, [0x80]), "UTF-8")
    }

    func testStringLongerThanLimit() {
        let length = Wire.maxStringBytes + 1
        let bytes = Array(Wire.encode(Envelope(requestId: 0, message: .disconnect(reason: ""))).prefix(16))
            + [UInt8(length & 0xFF), UInt8(length >> 8)] + [UInt8](repeating: 0x61, count: length)
        assertThrows(bytes, "limit")
    }

    func testValueErrors() {
        let cell = GraphEncoding(ops: [1], adjacency: [0])
        let gradient = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .comparatorGradient(
            ComparatorGradientJob(comparatorVersion: 0, cells: [cell], pairs: [CellPair(candidate: 0, reference: 0)],
                                  targets: [0.25]))))))
        assertThrows(patched(gradient, gradient.count - 4, le32(Float(1.5).bitPattern)), "outside [0, 1]")
        assertThrows(patched(gradient, gradient.count - 4, le32(Float(-0.25).bitPattern)), "outside [0, 1]")
        assertThrows(patched(gradient, gradient.count - 4, le32(Float.nan.bitPattern)), "not finite")

        let weights = Wire.encode(Envelope(requestId: 0, message: .weights(Weights(kind: .controller, version: 1,
                                                                                  parameters: [1]))))
        assertThrows(patched(weights, weights.count - 4, le32(Float.infinity.bitPattern)), "not finite")
        assertThrows(patched(weights, 16, [3]), "weights kind")

        let scores = Wire.encode(Envelope(requestId: 0, message: .result(JobResult(jobId: 0, payload: .scores([0.5])))))
        assertThrows(patched(scores, scores.count - 4, le32(Float(2).bitPattern)), "outside [0, 1]")
        assertThrows(patched(scores, 24, [9]), "result kind")

        let job = Wire.encode(Envelope(requestId: 0, message: .job(Job(jobId: 0, payload: .score(ScoreJob(
            comparatorVersion: 0, cells: [], pairs: []))))))
        assertThrows(patched(job, 24, [0]), "job kind")

        let summary = Wire.encode(Envelope(requestId: 0, message: .result(JobResult(jobId: 0, payload:
            .comparatorGradient(ComparatorGradientResult(gradient: [], pairCount: 3, lossSum: 1, correct: 3))))))
        assertThrows(patched(summary, summary.count - 4, le32(4)), "correct")
        assertThrows(patched(summary, summary.count - 12, le64(Double.nan.bitPattern)), "not finite")
    }

    func testErrorDescriptionsAreReadable() {
        XCTAssertEqual(WireError.truncated(needed: 8, available: 3).description, "truncated message: needed 8 bytes, 3 left")
        XCTAssertTrue(WireError.unsupportedVersion(2).description.contains("version 2"))
    }

    // MARK: Fuzz

    /// Every input must either decode to a value that re-encodes to the very same bytes (the
    /// format is canonical) or throw a WireError — never trap.
    func testFuzz() {
        var g = SeededGenerator(seed: 0xC7_4A5)
        var corpus = [[UInt8]]()
        for _ in 0..<8 { corpus += Samples.everyKind(&g, maxList: 5).map(Wire.encode) }
        var decoded = 0
        var errors = [String: Int]()
        let start = Date()
        for iteration in 0..<100_000 {
            let input: [UInt8]
            switch g.nextInt(below: 10) {
            case 0:
                input = Samples.bytes(count: g.nextInt(below: 64), &g)
            case 1:
                // A plausible header with a random type and body, to get past the magic check.
                input = Array("CTNS".utf8) + [1, 0, UInt8(g.nextInt(below: 11)), g.nextInt(below: 8) == 0 ? 1 : 0]
                    + Samples.bytes(count: 8 + g.nextInt(below: 48), &g)
            default:
                var bytes = corpus[g.nextInt(below: corpus.count)]
                for _ in 0...g.nextInt(below: 3) { Samples.mutate(&bytes, &g) }
                input = bytes
            }
            do {
                let envelope = try Wire.decode(input)
                decoded += 1
                let again = Wire.encode(envelope)
                if again != input { XCTFail("iteration \(iteration): re-encoding differs"); return }
                guard (try? Wire.decode(again)) == envelope else {
                    XCTFail("iteration \(iteration): second decode differs"); return
                }
            } catch {
                errors[Self.category(error), default: 0] += 1
            }
        }
        let rejected = errors.values.reduce(0, +)
        print("fuzz: \(decoded) decoded, \(rejected) rejected in \(Date().timeIntervalSince(start)) s: \(errors)")
        XCTAssertEqual(decoded + rejected, 100_000)
        // Both paths must actually be exercised, and rejections must come from many different checks.
        XCTAssertGreaterThan(decoded, 2_000)
        XCTAssertGreaterThan(rejected, 50_000)
        XCTAssertGreaterThanOrEqual(errors.count, 6)
    }

    // MARK: Helpers

    private static func category(_ error: WireError) -> String {
        switch error {
        case .badMagic: "badMagic"
        case .unsupportedVersion: "unsupportedVersion"
        case .unknownType: "unknownType"
        case .truncated: "truncated"
        case .tooLarge: "tooLarge"
        case .trailingBytes: "trailingBytes"
        case .invalid: "invalid"
        }
    }

    private func assertThrows(_ bytes: [UInt8], maxSize: Int = Wire.maxMessageSize, _ expected: WireError,
                              file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(bytes, maxSize: maxSize, matching: { $0 == expected }, file: file, line: line)
    }

    /// For `.invalid`, matches on a fragment of its reason.
    private func assertThrows(_ bytes: [UInt8], _ reasonFragment: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(bytes, matching: { error in
            if case .invalid(let why) = error { why.contains(reasonFragment) } else { false }
        }, file: file, line: line)
    }

    private func assertThrows(_ bytes: [UInt8], maxSize: Int = Wire.maxMessageSize,
                              matching: (WireError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let envelope = try Wire.decode(bytes, maxSize: maxSize)
            XCTFail("decoded \(envelope.message) instead of throwing", file: file, line: line)
        } catch {
            XCTAssertTrue(matching(error), "unexpected error: \(error)", file: file, line: line)
        }
    }

    private func patched(_ bytes: [UInt8], _ offset: Int, _ replacement: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy.replaceSubrange(offset..<offset + replacement.count, with: replacement)
        return copy
    }

    private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    private func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// Random but reproducible message contents.
private enum Samples {
    static func everyKind(_ g: inout SeededGenerator, maxList: Int) -> [Envelope] {
        func n() -> Int { g.nextInt(below: maxList + 1) }
        let cellCount = 1 + g.nextInt(below: maxList)
        let cells = (0..<cellCount).map { _ in cell(&g) }
        let pairs = (0..<n()).map { _ in
            CellPair(candidate: UInt32(g.nextInt(below: cellCount)), reference: UInt32(g.nextInt(below: cellCount)))
        }
        let sequences = (0..<n()).map { _ in (0..<n()).map { _ in UInt16(truncatingIfNeeded: g.next()) } }
        let messages: [Message] = [
            .hello(Hello(workerId: string(&g), threads: UInt16(truncatingIfNeeded: g.next()),
                         engineVersion: UInt32(truncatingIfNeeded: g.next()), capabilities: UInt32(truncatingIfNeeded: g.next()))),
            .welcome(Welcome(heartbeatIntervalMs: UInt32(truncatingIfNeeded: g.next()), livenessMs: UInt32(truncatingIfNeeded: g.next()))),
            .heartbeat,
            .disconnect(reason: string(&g)),
            .standby,
            .weights(Weights(kind: g.nextInt(below: 2) == 0 ? .comparator : .controller, version: g.next(),
                             parameters: floats(n(), &g))),
            .job(Job(jobId: g.next(), payload: .score(ScoreJob(comparatorVersion: g.next(), cells: cells, pairs: pairs)))),
            .job(Job(jobId: g.next(), payload: .comparatorGradient(ComparatorGradientJob(
                comparatorVersion: g.next(), cells: cells, pairs: pairs, targets: pairs.map { _ in g.nextUnitFloat() })))),
            .job(Job(jobId: g.next(), payload: .policyGradient(PolicyGradientJob(
                controllerVersion: g.next(), entropyCoefficient: g.nextUnitFloat(), sequences: sequences,
                advantages: floats(sequences.count, &g))))),
            .result(JobResult(jobId: g.next(), payload: .scores((0..<n()).map { _ in g.nextUnitFloat() }))),
            .result(JobResult(jobId: g.next(), payload: .comparatorGradient(ComparatorGradientResult(
                gradient: floats(n(), &g), pairCount: 100, lossSum: g.nextUnitDouble() * 1e3,
                correct: UInt32(g.nextInt(below: 101)))))),
            .result(JobResult(jobId: g.next(), payload: .policyGradient(PolicyGradientResult(
                gradient: floats(n(), &g), sampleCount: UInt32(truncatingIfNeeded: g.next()),
                logProbabilitySum: -g.nextUnitDouble() * 1e4, entropySum: g.nextUnitDouble())))),
            .error(WorkerError(jobId: g.next(), code: UInt16(truncatingIfNeeded: g.next()), message: string(&g))),
        ]
        return messages.map { Envelope(requestId: g.next(), message: $0) }
    }

    static func cell(_ g: inout SeededGenerator) -> GraphEncoding {
        let nodes = 1 + g.nextInt(below: 16)
        return GraphEncoding(ops: (0..<nodes).map { _ in UInt8(truncatingIfNeeded: g.next()) },
                             adjacency: (0..<nodes * nodes).map { _ in UInt8(g.next() & 1) },
                             widths: (0..<nodes).map { _ in UInt8(1 + g.nextInt(below: 128)) })
    }

    /// Mostly ordinary values, some arbitrary finite bit patterns (subnormals, huge exponents).
    static func floats(_ count: Int, _ g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in
            if g.nextInt(below: 4) == 0 {
                let f = Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))
                return f.isFinite ? f : 0
            }
            return (g.nextUnitFloat() - 0.5) * 10
        }
    }

    static func string(_ g: inout SeededGenerator) -> String {
        let alphabet: [Character] = ["a", "Z", "0", " ", "-", "é", "ß", "日", "🙂", "\u{0}"]
        return String((0..<g.nextInt(below: 12)).map { _ in alphabet[g.nextInt(below: alphabet.count)] })
    }

    static func bytes(count: Int, _ g: inout SeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: g.next()) }
    }

    static func mutate(_ bytes: inout [UInt8], _ g: inout SeededGenerator) {
        guard !bytes.isEmpty else { bytes = [UInt8(truncatingIfNeeded: g.next())]; return }
        let at = g.nextInt(below: bytes.count)
        switch g.nextInt(below: 7) {
        case 0:
            bytes[at] ^= 1 << UInt8(g.nextInt(below: 8))
        case 1:
            bytes[at] = UInt8(truncatingIfNeeded: g.next())
        case 2:
            bytes.removeLast(g.nextInt(below: bytes.count) + 1)
        case 3:
            bytes.insert(contentsOf: Self.bytes(count: 1 + g.nextInt(below: 4), &g), at: at)
        case 4:
            bytes.removeSubrange(at..<min(bytes.count, at + 1 + g.nextInt(below: 8)))
        default:
            // A count or length field blown up to something huge (or just off by a little).
            let values: [UInt32] = [.max, 0x8000_0000, 0x00FF_FFFF, 0xFFFF, UInt32(truncatingIfNeeded: g.next()),
                                    UInt32(g.nextInt(below: 64))]
            let value = values[g.nextInt(below: values.count)]
            let start = g.nextInt(below: 2) == 0 ? at : min(at, 16 + g.nextInt(below: 32))
            for k in 0..<4 where start + k < bytes.count {
                bytes[start + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k)))
            }
        }
    }
}
