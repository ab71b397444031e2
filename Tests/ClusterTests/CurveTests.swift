import Foundation
import XCTest
import Engine
import Protocol
@testable import Coordinator
@testable import Worker

/// CurveZMQ between coordinator and workers: key files, the ZAP allow-list (with reload), and the
/// rule for where an unsecured coordinator may listen. Loopback only; every wait is bounded.
final class CurveTests: XCTestCase {
    typealias Fixture = ClusterRunnerTests

    override func setUpWithError() throws {
        try XCTSkipUnless(ZMQCurve.isAvailable, "libzmq built without CURVE")
    }

    private var directories: [String] = []

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(atPath: d) }
        directories.removeAll()
    }

    private func temporaryDirectory() -> String {
        let d = NSTemporaryDirectory() + "ctnas-curve-\(UInt64.random(in: .min ... .max))"
        directories.append(d)
        return d
    }

    private func mode(_ path: String) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    private func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    private func message<T>(_ body: () throws -> T) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    // MARK: Key files

    func testKeygenWritesKeyPairsWithPrivateSecretKeys() throws {
        let parent = temporaryDirectory()
        let dir = parent + "/keys"
        let written = try CurveKeyFiles.generate(directory: dir)
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent },
                       ["coordinator.key", "coordinator.pub", "worker.key", "worker.pub", "authorized_workers"])
        XCTAssertEqual(try mode(dir), 0o700)
        for name in ["coordinator", "worker"] {
            XCTAssertEqual(try mode("\(dir)/\(name).key"), 0o600, name)
            XCTAssertEqual(try mode("\(dir)/\(name).pub"), 0o644, name)
            for ext in ["key", "pub"] {
                let text = try read("\(dir)/\(name).\(ext)")
                XCTAssertEqual(text.utf8.count, 41, "\(name).\(ext): one 40-character key and a newline")
                XCTAssertTrue(text.hasSuffix("\n"))
            }
            let pair = try CurveKeyPair.load(secretKeyFile: "\(dir)/\(name).key")
            XCTAssertEqual(pair.publicKey + "\n", try read("\(dir)/\(name).pub"), "public key derived from the secret one")
        }

        let server = try CurveSecurity.server(directory: dir)
        let client = try CurveSecurity.client(directory: dir)
        XCTAssertEqual(server.warnings, [])
        XCTAssertEqual(client.warnings, [])
        guard case .server(let serverPair, let authorized) = server.role,
              case .client(let clientPair, let serverKey) = client.role else { return XCTFail("roles") }
        XCTAssertEqual(authorized, [clientPair.publicKey], "the worker's key is authorized")
        XCTAssertEqual(serverKey, serverPair.publicKey)
        XCTAssertEqual(server.authorizedKeysFile, dir + "/authorized_workers")

        // Never overwritten by accident: nothing changes.
        let before = try read(dir + "/coordinator.key")
        let refusal = message { try CurveKeyFiles.generate(directory: dir) }
        XCTAssertTrue(refusal.contains("refusing to overwrite") && refusal.contains("--force"), refusal)
        XCTAssertEqual(try read(dir + "/coordinator.key"), before)
        try CurveKeyFiles.generate(directory: dir, force: true)
        XCTAssertNotEqual(try read(dir + "/coordinator.key"), before)
        XCTAssertEqual(try mode(dir + "/coordinator.key"), 0o600)

        // Several workers, all authorized.
        let many = parent + "/many"
        try CurveKeyFiles.generate(directory: many, workers: 3)
        let keys = try CurveSecurity.loadAuthorizedKeys(file: many + "/authorized_workers")
        XCTAssertEqual(keys.count, 3)
        for k in 1...3 {
            let c = try CurveSecurity.client(secretKeyFile: "\(many)/worker-\(k).key", serverPublicKeyFile: many + "/coordinator.pub")
            XCTAssertTrue(keys.contains(c.keyPair.publicKey), "worker-\(k)")
            XCTAssertEqual(try mode("\(many)/worker-\(k).key"), 0o600)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: many + "/worker.key"))
    }

    func testMalformedKeysFailWithClearMessages() throws {
        let dir = temporaryDirectory()
        try CurveKeyFiles.generate(directory: dir)
        let good = try read(dir + "/worker.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
            let path = "\(dir)/\(name)"
            try? FileManager.default.removeItem(atPath: path)
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]))
            return path
        }

        let short = try write("short.key", "abcdef\n")
        var m = message { try CurveKeyPair.load(secretKeyFile: short) }
        XCTAssertTrue(m.contains(short) && m.contains("expected 40 Z85 characters, got 6"), m)

        let badChar = try write("badchar.key", String(good.dropLast()) + "~\n")
        m = message { try CurveKeyPair.load(secretKeyFile: badChar) }
        XCTAssertTrue(m.contains("'~' is not a Z85 character"), m)

        let twoLines = try write("two.key", good + "\n" + good + "\n")
        m = message { try CurveKeyPair.load(secretKeyFile: twoLines) }
        XCTAssertTrue(m.contains("expected one Z85 key"), m)

        m = message { try CurveKeyPair.load(secretKeyFile: dir + "/absent.key") }
        XCTAssertTrue(m.contains("absent.key does not exist"), m)
        m = message { try CurveSecurity.server(directory: dir + "/nowhere") }
        XCTAssertTrue(m.contains("coordinator.key does not exist"), m)

        // "%%%%%" decodes past 2^32: not a key even though every character is Z85.
        XCTAssertFalse(CurveKeyPair.isValidKey(String(repeating: "%", count: 40)))
        XCTAssertTrue(CurveKeyPair.isValidKey(good))

        // A secret key others may read still loads, with a warning.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/coordinator.key")
        let loose = try CurveSecurity.server(directory: dir)
        XCTAssertEqual(loose.warnings.count, 1)
        XCTAssertTrue(loose.warnings[0].contains("chmod 600"), "\(loose.warnings)")

        // Allow-list: comments, blank lines, trailing comments; a bad line is named.
        let other = try CurveKeyPair.generate().publicKey
        let keys = try CurveSecurity.parseAuthorizedKeys("# workers\n\n  \(good)  # worker\n\(other)\n")
        XCTAssertEqual(keys, [good, other])
        m = message { try CurveSecurity.parseAuthorizedKeys("# ok\n\(good)\nnot-a-key\n", source: "allow") }
        XCTAssertTrue(m.contains("allow line 3") && m.contains("expected 40 Z85 characters"), m)
        m = message { try CurveSecurity.parseAuthorizedKeys("\(good) trailing words\n", source: "allow") }
        XCTAssertTrue(m.contains("allow line 1"), m)
        let empty = try write("authorized_workers", "# nobody\n", mode: 0o644)
        XCTAssertEqual(try CurveSecurity.loadAuthorizedKeys(file: empty), [])
        XCTAssertTrue(try CurveSecurity.server(directory: dir).warnings.contains { $0.contains("every worker will be refused") })
    }

    // MARK: Coordinator and workers

    /// Refusals and workers' events, from the runner's and the workers' threads.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var cluster: [ClusterEvent] = []
        private var workers: [String: [WorkerNode.Event]] = [:]
        func append(_ e: ClusterEvent) { lock.withLock { cluster.append(e) } }
        func append(_ e: WorkerNode.Event, worker: String) { lock.withLock { workers[worker, default: []].append(e) } }
        var events: [ClusterEvent] { lock.withLock { cluster } }
        func events(of worker: String) -> [WorkerNode.Event] { lock.withLock { workers[worker] ?? [] } }
        var refusals: [String] {
            events.compactMap { if case .workerRefused(_, let why) = $0 { why } else { nil } }
        }
    }

    private func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }

    private func worker(_ id: String, endpoint: String, security: CurveSecurity?, log: Log) -> Fixture.RunningWorker {
        Fixture.RunningWorker(WorkerNode(
            endpoint: endpoint, executor: Fixture.executor, threads: 2, workerId: id, context: nil,
            timing: WorkerNode.Timing(helloTimeout: .milliseconds(500), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)),
            security: security, onEvent: { log.append($0, worker: id) }))
    }

    func testOnlyAuthorizedWorkersGetJobsAndReloadAdmitsMore() throws {
        let coordinatorKeys = try CurveKeyPair.generate()
        let friend = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let server = CurveSecurity(role: .server(keyPair: coordinatorKeys, authorizedKeys: [friend.publicKey]))
        var configuration = Fixture.clusterConfiguration
        configuration.security = server
        let log = Log()
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: configuration, onEvent: { log.append($0) })
        XCTAssertTrue(runner.isSecured)
        XCTAssertTrue(runner.endpoint.hasPrefix("tcp://127.0.0.1:"), runner.endpoint)

        func client(_ pair: CurveKeyPair) -> CurveSecurity {
            CurveSecurity(role: .client(keyPair: pair, serverPublicKey: coordinatorKeys.publicKey))
        }
        let good = worker("friend", endpoint: runner.endpoint, security: client(friend), log: log)
        let bad = worker("stranger", endpoint: runner.endpoint, security: client(stranger), log: log)
        let plain = worker("plain", endpoint: runner.endpoint, security: nil, log: log)
        try runner.waitForWorkers(count: 1, timeout: .seconds(10))

        // The stranger's handshake is refused by the ZAP handler, and that is logged.
        XCTAssertTrue(waitUntil(seconds: 10) { log.refusals.contains { $0.contains(stranger.publicKey) } }, "\(log.events)")

        let work = Fixture.workload(seed: 61, scoreJobs: 8, gradientJobs: 4, policyJobs: 2)
        for w in work.weights { try runner.publish(w) }
        XCTAssertEqual(Fixture.bits(try runner.run(work.jobs)), Fixture.bits(try Fixture.expected(work)))
        XCTAssertEqual(runner.liveWorkerCount, 1)
        let joined = log.events.compactMap { if case .workerJoined(let w, _) = $0 { w } else { nil } }
        XCTAssertEqual(joined, ["friend"])
        for outsider in ["stranger", "plain"] {
            let seen = log.events(of: outsider)
            XCTAssertFalse(seen.contains { if case .welcomed = $0 { true } else { false } }, "\(outsider): \(seen)")
            XCTAssertFalse(seen.contains { if case .jobReceived = $0 { true } else { false } }, "\(outsider): \(seen)")
            XCTAssertTrue(waitUntil(seconds: 5) { log.events(of: outsider).contains { if case .reconnecting = $0 { true } else { false } } },
                          "\(outsider) keeps retrying: \(log.events(of: outsider))")
        }
        XCTAssertTrue(log.events(of: "friend").contains { if case .jobReceived = $0 { true } else { false } })

        // Key rotation without a restart: the stranger is admitted on its next attempt.
        XCTAssertThrowsError(try runner.reloadAuthorizedKeys(["not a key"]))
        try runner.reloadAuthorizedKeys([friend.publicKey, stranger.publicKey])
        XCTAssertEqual(runner.authorizedKeys, [friend.publicKey, stranger.publicKey])
        try runner.waitForWorkers(count: 2, timeout: .seconds(10))
        let again = Fixture.workload(seed: 62, version: 2, scoreJobs: 12, gradientJobs: 4, policyJobs: 2)
        for w in again.weights { try runner.publish(w) }
        XCTAssertEqual(Fixture.bits(try runner.run(again.jobs)), Fixture.bits(try Fixture.expected(again)))
        XCTAssertEqual(runner.liveWorkerCount, 2, "a plain-text worker never joins")

        runner.shutdown()
        XCTAssertTrue(good.join(), "friend left on standby")
        XCTAssertTrue(bad.join(), "stranger left on standby")
        plain.node.stop()
        XCTAssertTrue(plain.join())
    }

    func testWorkerWithWrongCoordinatorKeyNeverConnects() throws {
        let coordinatorKeys = try CurveKeyPair.generate()
        let impostor = try CurveKeyPair.generate()
        let friend = try CurveKeyPair.generate()
        var configuration = Fixture.clusterConfiguration
        configuration.security = CurveSecurity(role: .server(keyPair: coordinatorKeys, authorizedKeys: [friend.publicKey]))
        let log = Log()
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: configuration, onEvent: { log.append($0) })
        let lost = worker("lost", endpoint: runner.endpoint,
                          security: CurveSecurity(role: .client(keyPair: friend, serverPublicKey: impostor.publicKey)), log: log)
        XCTAssertThrowsError(try runner.waitForWorkers(count: 1, timeout: .milliseconds(1500)))
        XCTAssertTrue(log.events(of: "lost").contains { if case .reconnecting = $0 { true } else { false } })
        lost.node.stop()
        XCTAssertTrue(lost.join())
        runner.shutdown()

        // Settings of the wrong role are rejected up front.
        var wrongRole = Fixture.clusterConfiguration
        wrongRole.security = CurveSecurity(role: .client(keyPair: friend, serverPublicKey: coordinatorKeys.publicKey))
        XCTAssertThrowsError(try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: wrongRole))
        let serverNode = WorkerNode(endpoint: "tcp://127.0.0.1:1", executor: Fixture.executor, workerId: "x",
                                    security: CurveSecurity(role: .server(keyPair: friend, authorizedKeys: [])))
        XCTAssertThrowsError(try serverNode.run())
    }

    func testEphemeralLocalClientIsAdmitted() throws {
        let dir = temporaryDirectory()
        try CurveKeyFiles.generate(directory: dir)
        let (server, local) = try CurveSecurity.server(directory: dir).admittingEphemeralClient()
        var configuration = Fixture.clusterConfiguration
        configuration.security = server
        let context = try ZMQContext()
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: configuration, context: context)
        let log = Log()
        let node = worker("local", endpoint: runner.endpoint, security: local, log: log)
        try runner.waitForWorkers(count: 1, timeout: .seconds(10))
        let work = Fixture.workload(seed: 63, scoreJobs: 3, gradientJobs: 1, policyJobs: 1)
        for w in work.weights { try runner.publish(w) }
        XCTAssertEqual(Fixture.bits(try runner.run(work.jobs)), Fixture.bits(try Fixture.expected(work)))
        runner.shutdown()
        XCTAssertTrue(node.join())
    }

    /// inproc never runs a ZMTP handshake, so neither CURVE nor ZAP apply: in-process workers of a
    /// secured runner connect as they are (only code in the same process can reach inproc).
    func testInprocPeersOfASecuredRunnerSkipTheHandshake() throws {
        let coordinatorKeys = try CurveKeyPair.generate()
        var configuration = Fixture.clusterConfiguration
        configuration.security = CurveSecurity(role: .server(keyPair: coordinatorKeys, authorizedKeys: []))
        let context = try ZMQContext()
        let runner = try ClusterRunner(bind: "inproc://ctnas-curve-\(UInt32.random(in: 0 ... .max))",
                                       configuration: configuration, context: context)
        let node = Fixture.RunningWorker(WorkerNode(endpoint: runner.endpoint, executor: Fixture.executor, workerId: "inproc", context: context))
        try runner.waitForWorkers(count: 1, timeout: .seconds(5))
        runner.shutdown()
        XCTAssertTrue(node.join())
    }

    // MARK: ZAP handler

    func testZAPAuthenticatorRefusesOtherMechanismsAndStopsCleanly() throws {
        let context = try ZMQContext()
        let refusals = Log()
        let auth = try ZAPAuthenticator(context: context, authorizedKeys: [], domain: "ctnas",
                                        onRefusal: { refusals.append(.workerRefused(address: $0.address, reason: $0.reason)) })
        let second = message { try ZAPAuthenticator(context: context, authorizedKeys: []) }
        XCTAssertTrue(second.contains("already bound"), second)

        // A NULL-mechanism ROUTER that asks for ZAP: the handler refuses plain text.
        let router = try ZMQSocket(context: context, kind: .router)
        try router.set([.lingerMs(0), .zapDomain("ctnas"), .receiveTimeoutMs(300)])
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context: context, kind: .dealer)
        try dealer.set(.lingerMs(0))
        try dealer.connect(try router.lastEndpoint)
        try dealer.send([Array("hi".utf8)])
        XCTAssertNil(try router.receive(), "refused peer's message must not arrive")
        XCTAssertTrue(waitUntil(seconds: 5) { refusals.refusals.contains { $0.contains("NULL mechanism not allowed") } }, "\(refusals.events)")
        XCTAssertGreaterThanOrEqual(auth.counts.refused, 1)
        dealer.close()
        router.close()

        auth.stop()
        auth.stop()
        // Stopped: the endpoint is free for a new handler once ZeroMQ's reaper has closed the
        // old socket (closing is asynchronous, so allow it a moment).
        var next: ZAPAuthenticator?
        XCTAssertTrue(waitUntil(seconds: 5) {
            next = try? ZAPAuthenticator(context: context, authorizedKeys: [])
            return next != nil
        }, "the ZAP endpoint was never released")
        next?.stop()
    }

    // MARK: Listen rule

    func testListenRule() throws {
        for local in ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "tcp://127.1.2.3:80", "tcp://localhost:5555",
                      "tcp://[::1]:5555", "inproc://ctnas-search", "ipc:///tmp/ctnas.sock", "TCP://LOCALHOST:1"] {
            XCTAssertTrue(ListenPolicy.isLocal(local), local)
            XCTAssertNil(try ListenPolicy.check(local, secured: false, insecure: false), local)
        }
        for remote in ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.0.0.1:5555", "tcp://eth0:5555",
                       "tcp://[::]:5555", "tcp://128.0.0.1:5555", "tcp://127.0.0.1.example.com:1",
                       "tcp://localhost.evil:1", "ws://127.0.0.1:80", "pgm://eth0;239.0.0.1:5555", "tcp://127.0.0.1"] {
            XCTAssertFalse(ListenPolicy.isLocal(remote), remote)
            XCTAssertNil(try ListenPolicy.check(remote, secured: true, insecure: false), "keys make any address fine: \(remote)")
            let refusal = message { try ListenPolicy.check(remote, secured: false, insecure: false) }
            XCTAssertTrue(refusal.contains("--keys") && refusal.contains("--insecure"), refusal)
            let warning = try XCTUnwrap(try ListenPolicy.check(remote, secured: false, insecure: true), remote)
            XCTAssertTrue(warning.contains(remote) && warning.hasPrefix("warning:"), warning)
        }
        XCTAssertNil(try ListenPolicy.check("tcp://0.0.0.0:5555", secured: true, insecure: true))
    }
}
