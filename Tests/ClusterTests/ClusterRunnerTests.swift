import Foundation
import XCTest
import Engine
import Protocol
@testable import Coordinator
@testable import Worker

/// ClusterRunner and WorkerNode over real sockets (inproc and tcp://127.0.0.1 only). Every wait is
/// bounded: batches have a timeout and worker threads are joined with a deadline.
final class ClusterRunnerTests: XCTestCase {

    // MARK: Fixture

    static let comparatorConfiguration = ArchitectureComparator.Configuration(opCount: 6, maxNodes: 7, embeddingDimension: 8, layers: 2)
    static let grammar = NASBench101Grammar(hiddenSize: 8)
    static var executor: JobExecutor { JobExecutor(comparator: comparatorConfiguration, grammar: grammar) }

    static let clusterConfiguration = ClusterRunner.Configuration(
        heartbeatInterval: .milliseconds(100), liveness: .seconds(2), batchTimeout: .seconds(30))

    struct Workload {
        var weights: [Weights]
        var jobs: [JobPayload]
    }

    static func randomCell(_ g: inout SeededGenerator) -> GraphEncoding {
        let n = 2 + g.nextInt(below: 6)
        var ops = [UInt8](repeating: 0, count: n)
        ops[0] = 1; ops[n - 1] = 5
        for i in 1..<(n - 1) { ops[i] = UInt8(2 + g.nextInt(below: 3)) }
        var adjacency = [UInt8](repeating: 0, count: n * n)
        for i in 0..<n { for j in (i + 1)..<n where g.nextInt(below: 3) == 0 { adjacency[i * n + j] = 1 } }
        return GraphEncoding(ops: ops, adjacency: adjacency)
    }

    /// Score, comparator-gradient and policy-gradient jobs against weights version `version`.
    static func workload(seed: UInt64, version: UInt64 = 1, scoreJobs: Int = 10, gradientJobs: Int = 5, policyJobs: Int = 3) -> Workload {
        var g = SeededGenerator(seed: seed)
        let comparator = ArchitectureComparator(configuration: comparatorConfiguration, generator: &g)
        let controller = Controller(grammar: grammar, generator: &g)
        func cellsAndPairs(_ g: inout SeededGenerator) -> ([GraphEncoding], [CellPair]) {
            let cells = (0..<8).map { _ in randomCell(&g) }
            let pairs = (0..<16).map { _ in CellPair(candidate: UInt32(g.nextInt(below: 8)), reference: UInt32(g.nextInt(below: 8))) }
            return (cells, pairs)
        }
        var jobs: [JobPayload] = []
        for _ in 0..<scoreJobs {
            let (cells, pairs) = cellsAndPairs(&g)
            jobs.append(.score(ScoreJob(comparatorVersion: version, cells: cells, pairs: pairs)))
        }
        for _ in 0..<gradientJobs {
            let (cells, pairs) = cellsAndPairs(&g)
            let targets = pairs.map { _ in Float(g.nextInt(below: 2)) }
            jobs.append(.comparatorGradient(ComparatorGradientJob(comparatorVersion: version, cells: cells, pairs: pairs, targets: targets)))
        }
        for _ in 0..<policyJobs {
            let sequences = (0..<4).map { _ in controller.sample(generator: &g).sequence }
            let advantages = sequences.map { _ in g.nextUniform(-1, 1) }
            jobs.append(.policyGradient(PolicyGradientJob(controllerVersion: version, entropyCoefficient: 0.01,
                                                          sequences: sequences, advantages: advantages)))
        }
        // Interleave kinds so every worker sees each kind.
        var h = SeededGenerator(seed: seed &+ 1)
        h.fisherYates(&jobs)
        return Workload(weights: [Weights(kind: .comparator, version: version, parameters: comparator.parameters),
                                  Weights(kind: .controller, version: version, parameters: controller.parameters)],
                        jobs: jobs)
    }

    static func expected(_ w: Workload) throws -> [ResultPayload] {
        let direct = DirectRunner(executor: executor)
        for weights in w.weights { try direct.publish(weights) }
        return try direct.run(w.jobs)
    }

    /// Every float as its bit pattern, so "equal" means bit for bit (0 and −0 differ).
    static func bits(_ results: [ResultPayload]) -> [[UInt64]] {
        results.map { r in
            switch r {
            case .scores(let s): return s.map { UInt64($0.bitPattern) }
            case .comparatorGradient(let x):
                return x.gradient.map { UInt64($0.bitPattern) } + [UInt64(x.pairCount), x.lossSum.bitPattern, UInt64(x.correct)]
            case .policyGradient(let x):
                return x.gradient.map { UInt64($0.bitPattern) } + [UInt64(x.sampleCount), x.logProbabilitySum.bitPattern, x.entropySum.bitPattern]
            }
        }
    }

    /// A WorkerNode on its own thread, joined with a deadline.
    final class RunningWorker: @unchecked Sendable {
        let node: WorkerNode
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var failure: (any Error)?

        init(_ node: WorkerNode) {
            self.node = node
            let thread = Thread { [self] in
                do { try node.run() } catch { lock.withLock { failure = error } }
                done.signal()
            }
            thread.start()
        }

        /// True if `run()` returned within `seconds`, without throwing.
        func join(seconds: Double = 5) -> Bool {
            guard done.wait(timeout: .now() + seconds) == .success else { return false }
            done.signal()
            return lock.withLock { failure == nil }
        }
    }

    /// Collects what the runner reports, from its I/O thread.
    final class EventLog: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [ClusterEvent] = []
        func append(_ e: ClusterEvent) { lock.withLock { events.append(e) } }
        var all: [ClusterEvent] { lock.withLock { events } }
    }

    func startWorkers(_ count: Int, endpoint: String, context: ZMQContext?, threads: [Int] = [1, 2, 1],
                      onEvent: [Int: @Sendable (WorkerNode.Event) -> Void] = [:]) -> [RunningWorker] {
        (0..<count).map { k in
            RunningWorker(WorkerNode(endpoint: endpoint, executor: Self.executor, threads: threads[k % threads.count],
                                     workerId: "test-\(k)", context: context, onEvent: onEvent[k]))
        }
    }

    // MARK: Tests

    func runAndCompare(bind: String, sharedContext: Bool, workerCount: Int) throws {
        let context: ZMQContext? = sharedContext ? try ZMQContext() : nil
        let log = EventLog()
        let runner = try ClusterRunner(bind: bind, configuration: Self.clusterConfiguration, context: context,
                                       onEvent: { log.append($0) })
        if bind.hasPrefix("tcp://") {
            XCTAssertTrue(runner.endpoint.hasPrefix("tcp://127.0.0.1:"), runner.endpoint)
            XCTAssertFalse(runner.endpoint.hasSuffix("*"), runner.endpoint)
        }
        let workers = startWorkers(workerCount, endpoint: runner.endpoint, context: context)
        try runner.waitForWorkers(count: workerCount, timeout: .seconds(10))
        XCTAssertEqual(runner.liveWorkerCount, workerCount)

        // Two batches with a new weights version in between: each worker gets each version once.
        for (seed, version) in [(UInt64(11), UInt64(1)), (12, 2)] {
            let work = Self.workload(seed: seed, version: version)
            for w in work.weights { try runner.publish(w) }
            let results = try runner.run(work.jobs)
            XCTAssertEqual(Self.bits(results), Self.bits(try Self.expected(work)))
        }
        XCTAssertEqual(log.all.filter { if case .workerJoined = $0 { true } else { false } }.count, workerCount)

        runner.shutdown()
        for (k, w) in workers.enumerated() { XCTAssertTrue(w.join(), "worker \(k) did not leave on standby") }
        XCTAssertThrowsError(try runner.run([]))
    }

    func testInprocBatchesMatchDirectRunner() throws {
        try runAndCompare(bind: "inproc://ctnas-cluster-test-\(UInt32.random(in: 0 ... .max))", sharedContext: true, workerCount: 2)
    }

    func testTCPBatchesMatchDirectRunner() throws {
        try runAndCompare(bind: "tcp://127.0.0.1:*", sharedContext: false, workerCount: 3)
    }

    func testStoppingAWorkerMidBatchStillCompletesWithSameResults() throws {
        let context = try ZMQContext()
        let log = EventLog()
        let runner = try ClusterRunner(bind: "inproc://ctnas-cluster-stop-\(UInt32.random(in: 0 ... .max))",
                                       configuration: Self.clusterConfiguration, context: context, onEvent: { log.append($0) })
        // Worker 0 stops itself as soon as it holds a job, while the batch is in flight.
        final class Target: @unchecked Sendable {
            let lock = NSLock()
            var node: WorkerNode?
            func stop() { lock.withLock { node }?.stop() }
        }
        let target = Target()
        let stopOnFirstJob: @Sendable (WorkerNode.Event) -> Void = { event in
            if case .jobReceived = event { target.stop() }
        }
        let workers = startWorkers(2, endpoint: runner.endpoint, context: context, threads: [1], onEvent: [0: stopOnFirstJob])
        target.lock.withLock { target.node = workers[0].node }
        try runner.waitForWorkers(count: 2, timeout: .seconds(10))

        let work = Self.workload(seed: 21, scoreJobs: 16, gradientJobs: 8, policyJobs: 4)
        for w in work.weights { try runner.publish(w) }
        let results = try runner.run(work.jobs)
        XCTAssertEqual(Self.bits(results), Self.bits(try Self.expected(work)))
        XCTAssertTrue(workers[0].join(), "stopped worker's run() returned")
        XCTAssertTrue(log.all.contains { if case .workerLost(worker: "test-0", _) = $0 { true } else { false } }, "\(log.all)")
        XCTAssertEqual(runner.liveWorkerCount, 1)

        runner.shutdown()
        XCTAssertTrue(workers[1].join())
    }

    func testGarbageFromRawDealerDoesNotDisturbABatch() throws {
        let context = try ZMQContext()
        let log = EventLog()
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: Self.clusterConfiguration, context: context,
                                       onEvent: { log.append($0) })
        let workers = startWorkers(1, endpoint: runner.endpoint, context: context, threads: [2])
        try runner.waitForWorkers(count: 1, timeout: .seconds(10))

        let raw = try ZMQSocket(context: context, kind: .dealer)
        try raw.set([.lingerMs(0), .receiveTimeoutMs(5000)])
        try raw.connect(runner.endpoint)
        func next() throws -> Message {
            let frames = try XCTUnwrap(try raw.receive(), "no reply from the coordinator")
            let envelope = try Wire.decode(frames[0])
            return envelope.message
        }

        // A header that claims a result of 2³²−1 scores in a 29-byte frame.
        var oversized = Array("CTNS".utf8) + [1, 0, 8, 0] + [UInt8](repeating: 0, count: 8)
        oversized += [7, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]
        XCTAssertThrowsError(try Wire.decode(oversized))

        // As an unknown peer: each bad frame is answered with disconnect and otherwise ignored.
        for frames in [[Array("definitely not a ctnas frame".utf8)], [oversized], [[1, 2, 3], [4, 5, 6]]] {
            try raw.send(frames)
            guard case .disconnect = try next() else { return XCTFail("expected disconnect") }
        }

        // As a registered worker that turns hostile once it holds jobs.
        try raw.send([Wire.encode(Envelope(requestId: 1, message: .hello(Hello(workerId: "raw", threads: 4, engineVersion: 1))))])
        guard case .welcome = try next() else { return XCTFail("expected welcome") }
        try runner.waitForWorkers(count: 2, timeout: .seconds(5))

        let work = Self.workload(seed: 31, scoreJobs: 20, gradientJobs: 10, policyJobs: 4)
        for w in work.weights { try runner.publish(w) }
        final class Outcome: @unchecked Sendable { var results: Result<[ResultPayload], any Error>? }
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            outcome.results = Result { try runner.run(work.jobs) }
            finished.signal()
        }.start()

        var heldJobs = 0
        while heldJobs == 0 {
            switch try next() {
            case .job: heldJobs += 1
            case .weights, .heartbeat: continue
            case let other: return XCTFail("unexpected \(other)")
            }
        }
        try raw.send([oversized])
        try raw.send([[UInt8](repeating: 0xFF, count: 64)])

        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(Self.bits(try XCTUnwrap(outcome.results).get()), Self.bits(try Self.expected(work)))
        XCTAssertTrue(log.all.contains { if case .workerLost(worker: "raw", _) = $0 { true } else { false } }, "\(log.all)")
        XCTAssertTrue(log.all.contains { if case .jobRequeued = $0 { true } else { false } }, "\(log.all)")
        raw.close()

        // The real worker is still serving.
        XCTAssertEqual(runner.liveWorkerCount, 1)
        let again = Self.workload(seed: 32, version: 2, scoreJobs: 3, gradientJobs: 1, policyJobs: 1)
        for w in again.weights { try runner.publish(w) }
        XCTAssertEqual(Self.bits(try runner.run(again.jobs)), Self.bits(try Self.expected(again)))

        runner.shutdown()
        XCTAssertTrue(workers[0].join())
    }

    func testWaitForWorkersAndBatchTimeOutWithoutWorkers() throws {
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: ClusterRunner.Configuration(
            heartbeatInterval: .milliseconds(50), liveness: .milliseconds(500), batchTimeout: .milliseconds(200)))
        XCTAssertThrowsError(try runner.waitForWorkers(count: 1, timeout: .milliseconds(100)))
        let work = Self.workload(seed: 41, scoreJobs: 1, gradientJobs: 0, policyJobs: 0)
        for w in work.weights { try runner.publish(w) }
        XCTAssertThrowsError(try runner.run(work.jobs))
        runner.shutdown()
    }

    /// WorkerNode against a hand-driven ROUTER standing in for the coordinator: heartbeats,
    /// garbage ignored, reconnect on disconnect and on silence (keeping its weights), standby.
    func testWorkerNodeReconnectsKeepsWeightsAndHonoursStandby() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, kind: .router)
        try router.set([.lingerMs(0), .receiveTimeoutMs(5000)])
        try router.bind("tcp://127.0.0.1:*")
        let events = WorkerEvents()
        let worker = RunningWorker(WorkerNode(
            endpoint: try router.lastEndpoint, executor: Self.executor, threads: 1, workerId: "solo", context: context,
            timing: WorkerNode.Timing(helloTimeout: .seconds(2), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)),
            onEvent: { events.append($0) }))

        func next(_ expectedKind: String) throws -> (peer: [UInt8], message: Message) {
            let frames = try XCTUnwrap(try router.receive(), "nothing received, waiting for \(expectedKind)")
            return (frames[0], try Wire.decode(frames[1]).message)
        }
        /// Skips heartbeats until something else arrives.
        func nextNonHeartbeat(_ expectedKind: String) throws -> (peer: [UInt8], message: Message) {
            while true {
                let got = try next(expectedKind)
                if got.message != .heartbeat { return got }
            }
        }
        func send(_ peer: [UInt8], _ message: Message, requestId: UInt64 = 9) throws {
            try router.send([peer, Wire.encode(Envelope(requestId: requestId, message: message))])
        }
        func greet() throws -> [UInt8] {
            let (peer, message) = try nextNonHeartbeat("hello")
            guard case .hello(let h) = message else { throw RunnerError("expected hello, got \(message)") }
            XCTAssertEqual(h.workerId, "solo")
            XCTAssertEqual(h.threads, 1)
            try send(peer, .welcome(Welcome(heartbeatIntervalMs: 50, livenessMs: 400)))
            return peer
        }

        let work = Self.workload(seed: 51, scoreJobs: 3, gradientJobs: 0, policyJobs: 0)
        let expected = try Self.expected(work)
        var peer = try greet()
        try send(peer, .weights(work.weights[0]))
        try send(peer, .job(Job(jobId: 1, payload: work.jobs[0])), requestId: 101)
        let (_, first) = try nextNonHeartbeat("result 1")
        XCTAssertEqual(first, .result(JobResult(jobId: 1, payload: expected[0])))

        // Garbage is ignored; the worker keeps heartbeating.
        try router.send([peer, [0xDE, 0xAD, 0xBE, 0xEF]])
        XCTAssertEqual(try next("heartbeat").message, .heartbeat)

        // Told to disconnect: reconnects with a new connection and still holds version 1.
        try send(peer, .disconnect(reason: "coordinator restarting"))
        let second = try greet()
        XCTAssertNotEqual(second, peer)
        peer = second
        try send(peer, .job(Job(jobId: 2, payload: work.jobs[1])))
        XCTAssertEqual(try nextNonHeartbeat("result 2").message, .result(JobResult(jobId: 2, payload: expected[1])))

        // Silence longer than liveness: the worker gives up on this connection and says hello again.
        let silentSince = ContinuousClock.now
        let third = try greet()
        XCTAssertNotEqual(third, peer)
        XCTAssertGreaterThan(ContinuousClock.now - silentSince, .milliseconds(300))
        peer = third

        // Standby: the job in hand is finished and reported, then the worker leaves.
        try send(peer, .job(Job(jobId: 3, payload: work.jobs[2])))
        try send(peer, .standby)
        XCTAssertEqual(try nextNonHeartbeat("result 3").message, .result(JobResult(jobId: 3, payload: expected[2])))
        guard case .disconnect = try nextNonHeartbeat("disconnect").message else { return XCTFail("expected disconnect") }
        XCTAssertTrue(worker.join())
        let seen = events.all
        XCTAssertTrue(seen.contains { if case .ignored = $0 { true } else { false } }, "\(seen)")
        XCTAssertEqual(seen.filter { if case .reconnecting = $0 { true } else { false } }.count, 2, "\(seen)")
        XCTAssertEqual(seen.last, .stopped)
    }

    final class WorkerEvents: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [WorkerNode.Event] = []
        func append(_ e: WorkerNode.Event) { lock.withLock { events.append(e) } }
        var all: [WorkerNode.Event] { lock.withLock { events } }
    }
}
