import XCTest
import Foundation
@testable import Coordinator
import Engine
import Protocol
import Worker

/// A peer that sends random and mutated frames to the coordinator's port for as long as a
/// search runs: the search must end with the digest it has without it.
final class HostileClientTests: XCTestCase {
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
        func set() { lock.lock(); value = true; lock.unlock() }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }

    /// Valid messages of every kind, to mutate.
    static func seeds() -> [[UInt8]] {
        let cell = GraphEncoding(ops: [1, 3, 5], adjacency: [0, 1, 0, 0, 0, 1, 0, 0, 0])
        let messages: [Message] = [
            .hello(Hello(workerId: "intruder", threads: 4, engineVersion: JobExecutor.engineVersion)),
            .heartbeat,
            .result(JobResult(jobId: 1, payload: .scores([0.5, 0.25]))),
            .result(JobResult(jobId: 2, payload: .comparatorGradient(ComparatorGradientResult(gradient: [1, 2, 3], pairCount: 1, lossSum: 0.5, correct: 1)))),
            .error(WorkerError(jobId: 3, code: 1, message: "nope")),
            .job(Job(jobId: 9, payload: .score(ScoreJob(comparatorVersion: 1, cells: [cell], pairs: [CellPair(candidate: 0, reference: 0)])))),
            .weights(Weights(kind: .comparator, version: 7, parameters: [1, 2, 3])),
            .disconnect(reason: "bye"),
        ]
        return messages.enumerated().map { Wire.encode(Envelope(requestId: UInt64($0.offset), message: $0.element)) }
    }

    static func hostile(endpoint: String, context: ZMQContext, stop: Flag, sent: Counter) {
        var g = SeededGenerator(seed: 99)
        let seeds = Self.seeds()
        var peer: ZMQSocket?
        var frames = 0
        while !stop.isSet {
            if peer == nil || frames > 200 {
                peer?.close()
                peer = try? ZMQSocket(context: context, kind: .dealer)
                try? peer?.set(.lingerMs(0))
                try? peer?.connect(endpoint)
                frames = 0
            }
            var message = seeds[g.nextInt(below: seeds.count)]
            switch g.nextInt(below: 5) {
            case 0: message = (0..<g.nextInt(below: 64)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            case 1: for _ in 0..<(1 + g.nextInt(below: 4)) { message[g.nextInt(below: message.count)] ^= UInt8(1 << g.nextInt(below: 8)) }
            case 2: message = Array(message.prefix(g.nextInt(below: message.count)))
            case 3: if message.count > 20 { message.replaceSubrange(16..<20, with: [0xFF, 0xFF, 0xFF, 0x7F]) }
            default: break  // replayed valid message
            }
            let multipart = g.nextInt(below: 10) == 0 ? [message, message] : [message]
            if (try? peer?.send(multipart, dontWait: true)) == true { sent.add(1) }
            frames += 1
            usleep(200)
        }
        peer?.close()
    }

    func testHostileClientDoesNotChangeTheSearch() throws {
        let space = try SharedTable.space()
        let options = tinyOptions(seed: 8)
        let direct = Search(space: space, state: SearchState(space: space, options: options),
                            runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        try direct.runToEnd()

        let context = try ZMQContext()
        let dropped = Counter()
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: .init(engineVersion: JobExecutor.engineVersion),
                                       context: context) { event in
            if case .messageDropped = event { dropped.add(1) }
            if case .workerLost = event { dropped.add(1) }
        }
        defer { runner.shutdown() }
        let nodes = (0..<2).map { WorkerNode(endpoint: runner.endpoint, executor: JobExecutor(space: space), workerId: "honest-\($0)", context: context) }
        for node in nodes { Thread { try? node.run() }.start() }
        defer { nodes.forEach { $0.stop() } }
        try runner.waitForWorkers(count: 2, timeout: .seconds(10))

        let stop = Flag(), sent = Counter()
        let endpoint = runner.endpoint
        let attacker = Thread { Self.hostile(endpoint: endpoint, context: context, stop: stop, sent: sent) }
        attacker.start()
        usleep(100_000)
        let search = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { _ in }
        try search.runToEnd()
        stop.set()
        XCTAssertEqual(search.state.digest, direct.state.digest)
        XCTAssertGreaterThan(sent.value, 50, "the hostile client sent too little to mean anything")
        XCTAssertGreaterThan(dropped.value, 0, "nothing hostile was noticed")
    }
}
