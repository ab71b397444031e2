import XCTest
import Foundation
import Coordinator

/// Real processes over tcp on 127.0.0.1: a coordinator, worker processes, one killed mid-run.
final class ProcessClusterTests: XCTestCase {
    static var binary: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("ctnas").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw XCTSkip("cannot bind a loopback socket") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func launch(_ binary: String, _ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func wait(_ p: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        return !p.isRunning
    }

    func digest(_ dir: URL) throws -> String {
        let text = try String(contentsOf: dir.appendingPathComponent("result.json"), encoding: .utf8)
        return try XCTUnwrap(JSON.parse(text)["state_digest"]?.stringValue)
    }

    func testKilledWorkerProcessDoesNotChangeTheResult() throws {
        guard let binary = Self.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        _ = try SharedTable.space()  // skips without the shared table
        let schedule = ["--data", SharedTable.path, "--seed", "4", "--queries", "60", "--comparator-epochs", "20",
                        "--iterations", "300", "--baseline-every", "50", "--explore-every", "50", "--shards", "6", "--quiet"]
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-e2e-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        defer { try? FileManager.default.removeItem(at: root) }
        let undisturbed = root.appendingPathComponent("undisturbed"), disturbed = root.appendingPathComponent("disturbed")

        let reference = try launch(binary, ["search", "--workers", "1", "--output", undisturbed.path] + schedule)
        XCTAssertTrue(wait(reference, seconds: 300), "undisturbed search did not finish")
        XCTAssertEqual(reference.terminationStatus, 0)
        // The default preset holds back 2/5 of the 60 labels for the search and picks the highest-labelled cell.
        let result = try JSON.parse(String(contentsOf: undisturbed.appendingPathComponent("result.json"), encoding: .utf8))
        XCTAssertEqual(result["options"]?["search_queries"]?.intValue, 24)
        XCTAssertEqual(result["best"]?["hash"]?.stringValue, result["best_labelled"]?["hash"]?.stringValue)
        XCTAssertNotNil(result["curriculum_best"]?["rank"]?.intValue)
        let upFront = try XCTUnwrap(result["best_labelled_up_front"]?["test_accuracy"]?.doubleValue)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(result["best"]?["test_accuracy"]?.doubleValue), upFront)
        // Every ctnas process on an AVX2 CPU runs OpenBLAS's Haswell kernels unless told otherwise.
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil && cpu.contains(" avx2") && cpu.contains(" fma") {
            XCTAssertEqual(result["blas_kernels"]?.stringValue, "Haswell")
        } else {
            XCTAssertNotNil(result["blas_kernels"]?.stringValue)
        }

        let endpoint = "tcp://127.0.0.1:\(try Self.freePort())"
        let coordinator = try launch(binary, ["coordinator", "--listen", endpoint, "--min-workers", "3", "--output", disturbed.path] + schedule)
        let workers = try (0..<3).map { try launch(binary, ["worker", "--connect", endpoint, "--id", "e2e-\($0)"]) }
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        // Kill one worker once the controller phase has begun.
        let metrics = disturbed.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && coordinator.isRunning {
            if let text = try? String(contentsOf: metrics, encoding: .utf8), text.contains("\"search_started\"") { break }
            usleep(10_000)
        }
        XCTAssertTrue(coordinator.isRunning, "coordinator finished before a worker could be killed")
        kill(workers[1].processIdentifier, SIGKILL)
        XCTAssertTrue(wait(coordinator, seconds: 300), "coordinator did not finish")
        XCTAssertEqual(coordinator.terminationStatus, 0)
        XCTAssertEqual(try digest(disturbed), try digest(undisturbed))
        let log = try String(contentsOf: metrics, encoding: .utf8)
        XCTAssertTrue(log.contains("\"worker_lost\""), "the killed worker was never noticed")
        // Standby from the finished coordinator lets the surviving workers exit on their own.
        XCTAssertTrue(wait(workers[0], seconds: 30) && wait(workers[2], seconds: 30), "surviving workers did not stand down")
    }
}
