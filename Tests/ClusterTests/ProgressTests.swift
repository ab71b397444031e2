import XCTest
import Foundation
import Coordinator
import Protocol

/// `ctnas search` progress on stderr: JSON lines, timestamped text lines, and the live status
/// line on a terminal (a pseudo-terminal from util-linux `script`). Runs the built binary.
final class ProgressTests: XCTestCase {
    static let schedule = ["--seed", "5", "--workers", "2", "--queries", "40", "--comparator-epochs", "3", "--iterations", "30",
                           "--baseline-every", "10", "--explore-every", "10"]

    func tinySearch(_ extra: [String]) throws -> [String] {
        _ = try SharedTable.space()  // skips without the shared table
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-progress-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return ["search", "--data", SharedTable.path, "--output", dir.path] + Self.schedule + extra
    }

    /// Runs the binary to the end; returns its exit status, stdout and stderr (through files, so nothing can stall).
    func run(_ binary: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-progress-io-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        let outURL = base.appendingPathExtension("out"), errURL = base.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
    }

    func testJSONLogFormatIsOneEventObjectPerLine() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let arguments = try tinySearch(["--log-format", "json"])
        let (status, stdout, stderr) = try run(binary, arguments)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.hasPrefix("best cell "), stdout)
        var events: [JSON] = []
        for line in stderr.split(separator: "\n") {
            let object = try JSON.parse(String(line))
            let time = try XCTUnwrap(object["time"]?.stringValue, "no time in \(line)")
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
            XCTAssertNotNil(object["event"]?.stringValue, "no event in \(line)")
            events.append(object)
        }
        let kinds = Set(events.compactMap { $0["event"]?.stringValue })
        for kind in ["message", "worker_joined", "comparator_epoch", "search_started", "policy", "baseline", "finished"] {
            XCTAssertTrue(kinds.contains(kind), "no \(kind) event on stderr")
        }
        // The search's events are exactly those of metrics.jsonl, in order, plus "time".
        let output = try XCTUnwrap(arguments.firstIndex(of: "--output")).advanced(by: 1)
        let metrics = try String(contentsOfFile: arguments[output] + "/metrics.jsonl", encoding: .utf8)
        let logged = try metrics.split(separator: "\n").map { try JSON.parse(String($0)) }
        func searchEvents(_ list: [JSON]) -> [JSON] {
            list.filter { !["message", "warning"].contains($0["event"]?.stringValue) && !($0["event"]?.stringValue ?? "").hasPrefix("worker_") }
                .map { event in
                    guard case .object(let fields) = event else { return event }
                    return .object(fields.filter { $0.0 != "time" })
                }
        }
        XCTAssertEqual(searchEvents(events), searchEvents(logged))
    }

    func testPeerOfAnotherProtocolVersionIsShownInTheLog() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let endpoint = "tcp://127.0.0.1:\(try ProcessClusterTests.freePort())"
        // The same schedule, as a coordinator (which has no worker threads of its own).
        var arguments = Array(try tinySearch([]).dropFirst())
        if let k = arguments.firstIndex(of: "--workers") { arguments.removeSubrange(k...(k + 1)) }
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-version-\(getpid())-\(UInt32.random(in: 0 ... .max)).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let coordinator = Process()
        coordinator.executableURL = URL(fileURLWithPath: binary)
        coordinator.arguments = ["coordinator", "--listen", endpoint, "--min-workers", "1"] + arguments
        coordinator.standardOutput = FileHandle.nullDevice
        coordinator.standardError = try FileHandle(forWritingTo: errURL)
        try coordinator.run()
        defer { if coordinator.isRunning { coordinator.terminate() } }

        // A worker from an older build: a valid hello whose header says protocol version 1.
        let context = try ZMQContext()
        let old = try ZMQSocket(context: context, kind: .dealer)
        try old.set(.lingerMs(0))
        try old.connect(endpoint)
        var hello = Wire.encode(Envelope(requestId: 1, message: .hello(Hello(workerId: "old", threads: 1, engineVersion: 1))))
        hello[4] = 1; hello[5] = 0
        _ = try old.send([hello], dontWait: false)
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: binary)
        worker.arguments = ["worker", "--connect", endpoint]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer { if worker.isRunning { worker.terminate() } }
        let deadline = Date().addingTimeInterval(120)
        while coordinator.isRunning && Date() < deadline { usleep(50_000) }
        old.close()
        XCTAssertFalse(coordinator.isRunning, "the search did not finish")
        XCTAssertEqual(coordinator.terminationStatus, 0)
        let log = try String(contentsOf: errURL, encoding: .utf8)
        XCTAssert(log.contains("unsupported protocol version 1 (this build speaks \(Wire.version))"), log)
    }

    func testTextLogLinesAreTimestamped() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let (status, _, stderr) = try run(binary, try tinySearch([]))
        XCTAssertEqual(status, 0, stderr)
        let lines = stderr.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        for line in lines {
            XCTAssertNotNil(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S"#, options: .regularExpression), String(line))
        }
        XCTAssertFalse(stderr.contains("\r"), "a status line on a pipe")
        XCTAssertTrue(stderr.contains("search started: baseline"))
        XCTAssertTrue(stderr.contains("worker local-0 joined"))
        XCTAssertTrue(stderr.contains(": best 0."))
    }

    func testQuietPrintsNothingOnStderr() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let (status, stdout, stderr) = try run(binary, try tinySearch(["--quiet", "--log-format", "json"]))
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(stderr, "")
        XCTAssertTrue(stdout.hasPrefix("best cell "), stdout)
    }

    func testTerminalShowsOneStatusLineUpdatedInPlace() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let script = "/usr/bin/script"
        guard FileManager.default.isExecutableFile(atPath: script) else { throw XCTSkip("no util-linux script for a pseudo-terminal") }
        let command = "stty cols 80 rows 24; exec " + (try [binary] + tinySearch(["--comparator-epochs", "40"]))
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let (status, transcript, stderr) = try run(script, ["-qfec", command, "/dev/null"])
        XCTAssertEqual(status, 0, transcript + stderr)
        let redraw = "\r\u{1B}[K"
        XCTAssertTrue(transcript.contains(redraw), "no in-place redraw: \(transcript.debugDescription)")
        // What each redraw leaves on the line, up to the next redraw or line end ("\r\n" is one Character).
        let pieces = transcript.components(separatedBy: redraw).dropFirst()
            .map { $0.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map(String.init) ?? "" }
        let statuses = pieces.filter { $0.hasPrefix("pre-training ") || $0.hasPrefix("search ") || $0.hasPrefix("finished ") }
        XCTAssertTrue(statuses.contains { $0.hasPrefix("pre-training ") && $0.contains("/40 ") }, pieces.joined(separator: "\n"))
        for status in statuses { XCTAssertLessThan(status.count, 80, "wider than the terminal: \(status)") }
        // Notable events are printed above the status line, and it ends as a line of its own.
        XCTAssertTrue(pieces.contains { $0.hasPrefix("search started: baseline") })
        XCTAssertTrue(pieces.contains { $0.hasPrefix("worker local-1 joined") })
        let last = try XCTUnwrap(transcript.components(separatedBy: redraw).last)
        XCTAssertTrue(last.hasPrefix("finished 30/30 100%  took "), last.debugDescription)
        XCTAssertTrue(last.contains(" pairs/s"), last)
        let lines = last.split(whereSeparator: \.isNewline)
        XCTAssertEqual(lines.count, 2, last.debugDescription)
        XCTAssertTrue(lines.last?.hasPrefix("best cell ") ?? false, last.debugDescription)
    }
}
