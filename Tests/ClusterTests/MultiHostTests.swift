import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The deploy/ recipes (deploy/validate.sh), and a search spread over network namespaces that
/// stand in for separate hosts, one of which loses its link mid-search.
final class MultiHostTests: XCTestCase {
    /// The checkout: Tests/ClusterTests/MultiHostTests.swift is three levels down.
    private static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    private static let dataPath = repoRoot.deletingLastPathComponent()
        .appendingPathComponent("shared/data/nasbench101.csv.gz").path

    /// The ctnas executable built beside the test bundle.
    private static var binary: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("ctnas").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    private static func requirements() throws -> (binary: String, data: String) {
        guard let binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        guard FileManager.default.fileExists(atPath: dataPath) else { throw XCTSkip("no table at \(dataPath)") }
        return (binary, dataPath)
    }

    private static func temporaryDirectory(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ctnas-\(label)-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    // MARK: - Processes

    /// Starts `executable arguments` with stdout and stderr appended to `log`.
    private func launch(_ executable: String, _ arguments: [String], log: URL,
                        environment: [String: String]? = nil) throws -> Process {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        try? handle.close()
        return p
    }

    /// Waits up to `seconds` for `p` to exit. True when it has.
    @discardableResult
    private func wait(_ p: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        return !p.isRunning
    }

    /// The exit status, or nil while `p` runs (Foundation traps on terminationStatus then).
    private func exitStatus(_ p: Process) -> Int32? {
        p.isRunning ? nil : p.terminationStatus
    }

    /// Runs a command to its end (at most `timeout` seconds): its status and output.
    @discardableResult
    private func run(_ executable: String, _ arguments: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-cmd-\(getpid())-\(UInt32.random(in: 0 ... .max)).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let p = try launch(executable, arguments, log: log)
        if !wait(p, seconds: timeout) {
            kill(p.processIdentifier, SIGKILL)
            wait(p, seconds: 5)
            return (-1, "timed out after \(timeout) s: \(executable) \(arguments.joined(separator: " "))")
        }
        return (exitStatus(p) ?? -1, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    private func tail(_ url: URL, lines: Int = 40) -> String {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return "(no \(url.path))" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    private func digest(_ dir: URL) throws -> String {
        let text = try String(contentsOf: dir.appendingPathComponent("result.json"), encoding: .utf8)
        guard let range = text.range(of: #""state_digest"\s*:\s*"([0-9a-fA-F]+)""#, options: .regularExpression) else {
            throw NSError(domain: "MultiHostTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "no state_digest in \(dir.path)/result.json"])
        }
        return String(text[range]).split(separator: "\"").last.map(String.init) ?? ""
    }

    // MARK: - deploy/validate.sh

    /// Every file in deploy/ checks out, and the local and Slurm recipes run for real.
    func testDeployFolderValidates() throws {
        let (binary, data) = try Self.requirements()
        let script = Self.repoRoot.appendingPathComponent("deploy/validate.sh").path
        guard FileManager.default.fileExists(atPath: script) else { return XCTFail("no \(script)") }
        guard FileManager.default.isExecutableFile(atPath: "/bin/bash") else { throw XCTSkip("no /bin/bash") }
        let dir = try Self.temporaryDirectory("validate")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("validate.log")
        var environment = ProcessInfo.processInfo.environment
        environment["CTNAS_BIN"] = binary
        environment["CTNAS_DATA"] = data
        environment["TMPDIR"] = dir.path
        let started = Date()
        let p = try launch("/bin/bash", [script], log: log, environment: environment)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        XCTAssertTrue(wait(p, seconds: 600), "deploy/validate.sh did not finish within 600 s:\n\(tail(log))")
        XCTAssertEqual(exitStatus(p), 0, "deploy/validate.sh failed:\n\(tail(log, lines: 120))")
        print("deploy/validate.sh: \(tail(log, lines: 1)) (\(String(format: "%.1f", Date().timeIntervalSince(started))) s in the test)")
    }

    // MARK: - Several hosts

    private static func ipCommand() -> String? {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Namespaces this test left behind in a run that crashed (its pid is gone): their processes
    /// are killed and the namespaces deleted. Namespaces of a test still running are left alone.
    private func removeStaleNamespaces(ip: String) throws {
        let (status, output) = try run(ip, ["netns", "list"])
        guard status == 0 else { return }
        for line in output.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0] == "ctnas", ["c", "w1", "w2"].contains(parts[1]),
                  let owner = Int32(parts[2]), owner != getpid(), kill(owner, 0) != 0, errno == ESRCH else { continue }
            let pids = (try? run(ip, ["netns", "pids", name]))?.output ?? ""
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            _ = try? run(ip, ["netns", "delete", name])
        }
    }

    /// A coordinator and two workers, each in its own network namespace (a host of its own) joined
    /// by veth pairs to a bridge in the coordinator's namespace, on 10.213.0.0/24 (addresses exist
    /// only inside these namespaces), CurveZMQ keys from `ctnas keygen`. Once the search phase has
    /// begun, the first worker's host loses its link: the coordinator declares it lost after the
    /// 3 s liveness, its jobs are redone on the other host, and the result is bit-identical to an
    /// undisturbed single-process run of the same schedule.
    func testSearchAcrossNetworkNamespacesSurvivesACutLink() throws {
        let (binary, data) = try Self.requirements()
        guard getuid() == 0 else { throw XCTSkip("needs root to create network namespaces (ip netns)") }
        guard let ip = Self.ipCommand() else { throw XCTSkip("no ip command (iproute2) to create network namespaces") }

        try removeStaleNamespaces(ip: ip)
        let pid = getpid()
        let coordinatorHost = "ctnas-c-\(pid)"
        let workerHosts = ["ctnas-w1-\(pid)", "ctnas-w2-\(pid)"]
        let namespaces = [coordinatorHost] + workerHosts
        let coordinatorAddress = "10.213.0.1"
        let endpoint = "tcp://\(coordinatorAddress):5555"

        var processes: [Process] = []
        let dir = try Self.temporaryDirectory("multihost")
        defer {
            // Every process, then every namespace (their veths and the bridge go with them).
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            for p in processes { wait(p, seconds: 5) }
            for ns in namespaces { _ = try? run(ip, ["netns", "delete", ns], timeout: 10) }
            try? FileManager.default.removeItem(at: dir)
        }

        // The hosts. A failure here means this machine cannot do it: skip, saying why.
        func setUp(_ arguments: [String]) throws {
            let (status, output) = try run(ip, arguments)
            guard status == 0 else {
                throw XCTSkip("cannot build the namespace network: ip \(arguments.joined(separator: " ")) failed (\(status)): \(output)")
            }
        }
        for ns in namespaces {
            try setUp(["netns", "add", ns])
            try setUp(["-n", ns, "link", "set", "lo", "up"])
        }
        try setUp(["-n", coordinatorHost, "link", "add", "br0", "type", "bridge"])
        try setUp(["-n", coordinatorHost, "addr", "add", "\(coordinatorAddress)/24", "dev", "br0"])
        try setUp(["-n", coordinatorHost, "link", "set", "br0", "up"])
        for (k, host) in workerHosts.enumerated() {
            let port = "v\(k + 1)"
            try setUp(["-n", coordinatorHost, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host])
            try setUp(["-n", coordinatorHost, "link", "set", port, "master", "br0"])
            try setUp(["-n", coordinatorHost, "link", "set", port, "up"])
            try setUp(["-n", host, "addr", "add", "10.213.0.\(k + 2)/24", "dev", "eth0"])
            try setUp(["-n", host, "link", "set", "eth0", "up"])
        }
        for (k, host) in workerHosts.enumerated() {
            let (status, output) = try run(ip, ["netns", "exec", host, "ping", "-c", "1", "-W", "5", coordinatorAddress], timeout: 15)
            if status != 0 && !output.contains("not found") && !output.contains("No such file") {
                XCTFail("worker host \(k + 1) cannot reach the coordinator's host: \(output)")
            }
        }

        let keys = dir.appendingPathComponent("keys")
        let keygen = try run(binary, ["keygen", keys.path, "--workers", "2"])
        XCTAssertEqual(keygen.status, 0, keygen.output)

        let schedule = ["--data", data, "--seed", "5", "--queries", "60", "--comparator-epochs", "20", "--iterations", "300",
                        "--baseline-every", "50", "--explore-every", "50", "--shards", "6"]
        let undisturbed = dir.appendingPathComponent("undisturbed"), disturbed = dir.appendingPathComponent("disturbed")
        let started = Date()

        // The reference: the same schedule in one process, no network at all.
        let reference = try launch(binary, ["search", "--workers", "1", "--quiet", "--output", undisturbed.path] + schedule,
                                   log: dir.appendingPathComponent("undisturbed.log"))
        processes.append(reference)
        guard wait(reference, seconds: 300), exitStatus(reference) == 0 else {
            return XCTFail("the undisturbed search failed:\n\(tail(dir.appendingPathComponent("undisturbed.log")))")
        }

        let coordinatorLog = dir.appendingPathComponent("coordinator.log")
        let coordinator = try launch(ip, ["netns", "exec", coordinatorHost, binary, "coordinator", "--listen", endpoint,
                                          "--keys", keys.path, "--min-workers", "2", "--output", disturbed.path] + schedule,
                                     log: coordinatorLog)
        processes.append(coordinator)
        var workers: [Process] = []
        for (k, host) in workerHosts.enumerated() {
            let w = try launch(ip, ["netns", "exec", host, binary, "worker", "--connect", endpoint, "--id", "host-\(k + 1)",
                                    "--key", keys.appendingPathComponent("worker-\(k + 1).key").path,
                                    "--server-key", keys.appendingPathComponent("coordinator.pub").path],
                               log: dir.appendingPathComponent("worker-\(k + 1).log"))
            processes.append(w)
            workers.append(w)
        }

        // Cut the first worker host's link once the controller phase has begun.
        let metrics = disturbed.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        var searching = false
        while Date() < deadline && coordinator.isRunning {
            if let text = try? String(contentsOf: metrics, encoding: .utf8), text.contains("\"search_started\"") { searching = true; break }
            usleep(10_000)
        }
        guard searching else { return XCTFail("the search phase never started:\n\(tail(coordinatorLog))") }
        guard coordinator.isRunning else { return XCTFail("the coordinator finished before a link could be cut:\n\(tail(coordinatorLog))") }
        let cut = try run(ip, ["-n", workerHosts[0], "link", "set", "eth0", "down"])
        XCTAssertEqual(cut.status, 0, "cannot cut the link: \(cut.output)")
        let cutAt = Date()

        XCTAssertTrue(wait(coordinator, seconds: 240), "the coordinator did not finish after the cut:\n\(tail(coordinatorLog))")
        let finishedAfterCut = Date().timeIntervalSince(cutAt)
        XCTAssertEqual(exitStatus(coordinator), 0, tail(coordinatorLog))
        XCTAssertEqual(try digest(disturbed), try digest(undisturbed), "a cut link changed the result")
        let events = (try? String(contentsOf: metrics, encoding: .utf8)) ?? ""
        let lost = events.split(separator: "\n").filter { $0.contains("\"worker_lost\"") && $0.contains("host-1") }
        XCTAssertFalse(lost.isEmpty, "the coordinator never noticed the cut host:\n\(events.suffix(2000))")
        let firstLog = (try? String(contentsOf: dir.appendingPathComponent("worker-1.log"), encoding: .utf8)) ?? ""
        XCTAssertTrue(firstLog.contains("welcomed"), "the cut host never joined the search")

        // The host still linked is stood down by the finished coordinator (its standby can be lost
        // when the coordinator exits under load; then SIGTERM, which a worker also obeys). The cut
        // host never hears of it: SIGTERM.
        if !wait(workers[1], seconds: 15) {
            print("note: the linked worker missed the coordinator's standby; stopping it with SIGTERM")
            kill(workers[1].processIdentifier, SIGTERM)
            XCTAssertTrue(wait(workers[1], seconds: 30), "the linked worker ignored SIGTERM")
        }
        XCTAssertEqual(exitStatus(workers[1]), 0)
        let terminated = Date()
        kill(workers[0].processIdentifier, SIGTERM)
        if !wait(workers[0], seconds: 30) { kill(workers[0].processIdentifier, SIGKILL) }
        XCTAssertEqual(exitStatus(workers[0]), 0, "the cut worker did not exit 0 on SIGTERM")
        print(String(format: "the cut worker exited %.1f s after SIGTERM", Date().timeIntervalSince(terminated)))
        print(String(format: "multi-host search: %.1f s in all, coordinator finished %.1f s after the cut; %d worker_lost event(s)",
                     Date().timeIntervalSince(started), finishedAfterCut, lost.count))
    }
}
