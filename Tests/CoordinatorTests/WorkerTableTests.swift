import XCTest
import Engine
import Protocol
@testable import Coordinator

/// The coordinator's pure state machine, driven by hand with an injected clock: no sockets,
/// no threads, no sleeping.
final class WorkerTableTests: XCTestCase {
    typealias Directive = WorkerTable.Directive

    // MARK: Helpers

    static let parameterCount = 5
    let a = PeerID([0xA])
    let b = PeerID([0xB])
    let c = PeerID([0xC])

    func ms(_ n: Int) -> Duration { .milliseconds(n) }

    func makeTable(maxWorkers: Int = 1024) -> WorkerTable {
        var table = WorkerTable(settings: .init(heartbeatInterval: .seconds(1), liveness: .seconds(3), maxWorkers: maxWorkers))
        table.publish(weights: comparatorWeights(version: 1))
        return table
    }

    func comparatorWeights(version: UInt64) -> Weights {
        Weights(kind: .comparator, version: version, parameters: [Float](repeating: Float(version), count: Self.parameterCount))
    }

    /// Job `k` of a batch is a score job with `k + 1` pairs, so its result is recognisable.
    func scoreJobs(_ count: Int, version: UInt64 = 1) -> [JobPayload] {
        let cell = GraphEncoding(ops: [1, 5], adjacency: [0, 1, 0, 0])
        return (0..<count).map { k in
            .score(ScoreJob(comparatorVersion: version, cells: [cell],
                            pairs: Array(repeating: CellPair(candidate: 0, reference: 0), count: k + 1)))
        }
    }

    /// The right answer for `job`: one made-up score per pair.
    func answer(_ job: Job) -> ResultPayload {
        guard case .score(let s) = job.payload else { fatalError("score jobs only") }
        return .scores(Array(repeating: Float(s.pairs.count) / 100, count: s.pairs.count))
    }

    func hello(_ table: inout WorkerTable, _ peer: PeerID, threads: UInt16 = 1, at now: Duration = .zero) -> [Directive] {
        table.receive(from: peer, envelope: Envelope(requestId: 77, message: .hello(
            Hello(workerId: "w\(peer.bytes[0])", threads: threads, engineVersion: 1))), now: now)
    }

    func reply(_ table: inout WorkerTable, _ peer: PeerID, _ message: Message, at now: Duration = .zero) -> [Directive] {
        table.receive(from: peer, envelope: Envelope(requestId: 0, message: message), now: now)
    }

    func result(_ table: inout WorkerTable, _ peer: PeerID, _ job: Job, at now: Duration = .zero) -> [Directive] {
        reply(&table, peer, .result(JobResult(jobId: job.jobId, payload: answer(job))), at: now)
    }

    func messages(_ directives: [Directive], to peer: PeerID) -> [Message] {
        directives.compactMap { if case .send(peer, let e) = $0 { return e.message } else { return nil } }
    }

    func jobs(_ directives: [Directive], to peer: PeerID) -> [Job] {
        messages(directives, to: peer).compactMap { if case .job(let j) = $0 { return j } else { return nil } }
    }

    func weightsSent(_ directives: [Directive], to peer: PeerID) -> [UInt64] {
        messages(directives, to: peer).compactMap { if case .weights(let w) = $0 { return w.version } else { return nil } }
    }

    func completed(_ directives: [Directive]) -> [ResultPayload]? {
        for d in directives { if case .completed(let r) = d { return r } }
        return nil
    }

    func failed(_ directives: [Directive]) -> String? {
        for d in directives { if case .failed(let r) = d { return r } }
        return nil
    }

    func events(_ directives: [Directive]) -> [ClusterEvent] {
        directives.compactMap { if case .log(let e) = $0 { return e } else { return nil } }
    }

    func isDisconnect(_ m: Message) -> Bool {
        if case .disconnect = m { return true }
        return false
    }

    // MARK: Registration

    func testHelloRegistersAndIsWelcomed() {
        var table = makeTable()
        let out = hello(&table, a, threads: 4)
        XCTAssertEqual(out.first, .send(a, Envelope(requestId: 77, message: .welcome(Welcome(heartbeatIntervalMs: 1000, livenessMs: 3000)))))
        XCTAssertEqual(events(out), [.workerJoined(worker: "w10", threads: 4)])
        XCTAssertEqual(table.liveWorkerCount, 1)
    }

    func testUnknownPeerIsToldToDisconnect() {
        var table = makeTable()
        for message in [Message.heartbeat, .result(JobResult(jobId: 1, payload: .scores([0.5]))),
                        .error(WorkerError(jobId: 1, code: 1, message: "x"))] {
            let out = reply(&table, c, message)
            XCTAssertEqual(messages(out, to: c).count, 1)
            XCTAssertTrue(isDisconnect(messages(out, to: c)[0]))
        }
        // A goodbye is never answered, or two forgetful ends could bounce disconnects forever.
        XCTAssertTrue(messages(reply(&table, c, .disconnect(reason: "bye")), to: c).isEmpty)
        XCTAssertEqual(table.liveWorkerCount, 0)
    }

    func testWorkerCapIsEnforced() {
        var table = makeTable(maxWorkers: 2)
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = hello(&table, c)
        XCTAssertTrue(isDisconnect(messages(out, to: c)[0]))
        XCTAssertEqual(table.liveWorkerCount, 2)
    }

    // MARK: Weights and scheduling

    func testWeightsSentOncePerVersionBeforeJobs() {
        var table = makeTable()
        _ = hello(&table, a, threads: 2)
        var out = table.submit(jobs: scoreJobs(3), now: .zero)
        let sent = messages(out, to: a)
        XCTAssertEqual(sent.count, 3)
        guard case .weights(let w) = sent[0] else { return XCTFail("weights must precede the first job") }
        XCTAssertEqual(w, comparatorWeights(version: 1))
        var inFlight = jobs(out, to: a)
        XCTAssertEqual(inFlight.map(\.jobId), [1, 2])

        out = result(&table, a, inFlight[0])
        XCTAssertEqual(weightsSent(out, to: a), [], "version 1 already sent to this worker")
        inFlight = Array(inFlight.dropFirst()) + jobs(out, to: a)
        XCTAssertEqual(inFlight.map(\.jobId), [2, 3])
        _ = result(&table, a, inFlight[0])
        XCTAssertNotNil(completed(result(&table, a, inFlight[1])))

        table.publish(weights: comparatorWeights(version: 2))
        out = table.submit(jobs: scoreJobs(2, version: 2), now: .zero)
        XCTAssertEqual(weightsSent(out, to: a), [2])
        XCTAssertEqual(jobs(out, to: a).map(\.jobId), [4, 5], "job ids continue across batches")
    }

    func testJobNamingUnpublishedWeightsFailsAtOnce() {
        var table = makeTable()
        _ = hello(&table, a)
        XCTAssertNotNil(failed(table.submit(jobs: scoreJobs(2, version: 9), now: .zero)))
        XCTAssertFalse(table.batchInProgress)
    }

    func testCapacityRespectedLeastLoadedFirst() {
        var table = makeTable()
        _ = hello(&table, a, threads: 2)
        _ = hello(&table, b, threads: 1)
        let out = table.submit(jobs: scoreJobs(10), now: .zero)
        // Least loaded first, ties to the earlier joiner: 1→A, 2→B, 3→A.
        XCTAssertEqual(jobs(out, to: a).map(\.jobId), [1, 3])
        XCTAssertEqual(jobs(out, to: b).map(\.jobId), [2])
    }

    func testResultsInJobOrderRegardlessOfCompletionOrder() {
        var table = makeTable()
        _ = hello(&table, a, threads: 3)
        _ = hello(&table, b, threads: 2)
        var out = table.submit(jobs: scoreJobs(5), now: .zero)
        let onA = jobs(out, to: a)
        let all = onA + jobs(out, to: b)
        XCTAssertEqual(all.count, 5)
        for job in all.sorted(by: { $0.jobId > $1.jobId }) {
            out = result(&table, onA.contains(job) ? a : b, job)
        }
        XCTAssertEqual(completed(out), all.sorted { $0.jobId < $1.jobId }.map(answer))
    }

    func testEmptyBatchCompletesImmediately() {
        var table = makeTable()
        XCTAssertEqual(completed(table.submit(jobs: [], now: .zero)), [])
    }

    // MARK: Liveness

    func testIdleWorkersGetHeartbeatsEveryInterval() {
        var table = makeTable()
        _ = hello(&table, a)
        XCTAssertTrue(messages(table.tick(now: ms(900)), to: a).isEmpty)
        XCTAssertEqual(messages(table.tick(now: ms(1000)), to: a), [.heartbeat])
        XCTAssertTrue(messages(table.tick(now: ms(1500)), to: a).isEmpty)
        _ = reply(&table, a, .heartbeat, at: ms(1900))
        XCTAssertEqual(messages(table.tick(now: ms(2000)), to: a), [.heartbeat])
    }

    func testDeadWorkersJobsGoToOthersAfterLiveness() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = table.submit(jobs: scoreJobs(3), now: .zero)
        let jobA = jobs(out, to: a)[0], jobB = jobs(out, to: b)[0]
        XCTAssertEqual([jobA.jobId, jobB.jobId], [1, 2])

        // B keeps talking, A goes silent.
        for t in stride(from: 500, through: 3000, by: 500) {
            _ = reply(&table, b, .heartbeat, at: ms(t))
            XCTAssertTrue(events(table.tick(now: ms(t))).isEmpty, "A is within liveness at \(t) ms")
        }
        let lost = table.tick(now: ms(3001))
        XCTAssertTrue(events(lost).contains(.workerLost(worker: "w10", reason: "silent for longer than 3.0 seconds")), "\(events(lost))")
        XCTAssertTrue(events(lost).contains(.jobRequeued(jobId: 1, reason: "worker w10 lost")))
        XCTAssertEqual(table.liveWorkerCount, 1)

        // A's job went to the front of the queue: B gets it before job 3.
        let next = result(&table, b, jobB, at: ms(3100))
        XCTAssertEqual(jobs(next, to: b).map(\.jobId), [1])
        let last = result(&table, b, jobs(next, to: b)[0], at: ms(3200))
        XCTAssertEqual(jobs(last, to: b).map(\.jobId), [3])
        let done = result(&table, b, jobs(last, to: b)[0], at: ms(3300))
        XCTAssertEqual(completed(done), scoreJobs(3).enumerated().map { answer(Job(jobId: UInt64($0.offset + 1), payload: $0.element)) })

        // The dead worker's late result is dropped, and it is told to reconnect.
        let late = result(&table, a, jobA, at: ms(3400))
        XCTAssertTrue(isDisconnect(messages(late, to: a)[0]))
    }

    // MARK: Results and errors

    func testLateDuplicateAndUnknownResultsAreDropped() {
        var table = makeTable()
        _ = hello(&table, a, threads: 2)
        _ = hello(&table, b, threads: 1)
        let out = table.submit(jobs: scoreJobs(3), now: .zero)
        let onA = jobs(out, to: a), onB = jobs(out, to: b)
        XCTAssertEqual(onA.map(\.jobId), [1, 3])

        _ = result(&table, a, onA[0])
        let duplicate = result(&table, a, onA[0])
        XCTAssertEqual(events(duplicate).count, 1)
        guard case .messageDropped = events(duplicate)[0] else { return XCTFail("\(duplicate)") }

        // B answering a job that is A's is not a valid result either: the first valid one wins.
        let stolen = result(&table, b, onA[1])
        guard case .messageDropped = events(stolen).first else { return XCTFail("\(stolen)") }

        let unknown = reply(&table, a, .result(JobResult(jobId: 999, payload: .scores([0.5]))))
        guard case .messageDropped = events(unknown).first else { return XCTFail("\(unknown)") }

        _ = result(&table, b, onB[0])
        let done = result(&table, a, onA[1])
        XCTAssertEqual(completed(done), (onA + onB).sorted { $0.jobId < $1.jobId }.map(answer))
        XCTAssertEqual(table.liveWorkerCount, 2, "dropping a result does not drop the worker")
    }

    func testResultNotFittingItsJobDropsTheWorker() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = table.submit(jobs: scoreJobs(2), now: .zero)
        let bad = reply(&table, a, .result(JobResult(jobId: jobs(out, to: a)[0].jobId, payload: .scores([0.1, 0.2, 0.3]))))
        XCTAssertTrue(isDisconnect(messages(bad, to: a)[0]))
        XCTAssertEqual(table.liveWorkerCount, 1)
    }

    func testMissingWeightsResendsWeightsAndRetries() {
        var table = makeTable()
        _ = hello(&table, a)
        let out = table.submit(jobs: scoreJobs(1), now: .zero)
        let job = jobs(out, to: a)[0]
        let retry = reply(&table, a, .error(WorkerError(jobId: job.jobId, code: 1, message: "missing comparator weights version 1")))
        let sent = messages(retry, to: a)
        XCTAssertEqual(sent, [.weights(comparatorWeights(version: 1)), .job(job)])
        XCTAssertNotNil(completed(result(&table, a, job)))
    }

    func testMissingWeightsForeverFailsTheBatch() {
        var table = makeTable()
        _ = hello(&table, a)
        var job = jobs(table.submit(jobs: scoreJobs(1), now: .zero), to: a)[0]
        for attempt in 1...6 {
            let out = reply(&table, a, .error(WorkerError(jobId: job.jobId, code: 1, message: "missing")))
            if attempt <= 5 {
                job = jobs(out, to: a)[0]
            } else {
                XCTAssertNotNil(failed(out))
            }
        }
    }

    func testInvalidJobGoesToAnotherWorkerOnceThenFailsTheBatch() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = table.submit(jobs: scoreJobs(2), now: .zero)
        let job = jobs(out, to: a)[0]
        _ = result(&table, b, jobs(out, to: b)[0])   // B free: the rejected job must not return to A
        let first = reply(&table, a, .error(WorkerError(jobId: job.jobId, code: 2, message: "invalid job: bad cell")))
        XCTAssertNil(failed(first))
        XCTAssertEqual(jobs(first, to: a), [])
        XCTAssertEqual(jobs(first, to: b), [job])
        let second = reply(&table, b, .error(WorkerError(jobId: job.jobId, code: 2, message: "invalid job: bad cell")))
        XCTAssertNotNil(failed(second))
        XCTAssertFalse(table.batchInProgress)
        // Late replies to the failed batch are dropped, not misattributed to the next batch.
        let next = table.submit(jobs: scoreJobs(1), now: .zero)
        XCTAssertEqual(jobs(next, to: a).map(\.jobId) + jobs(next, to: b).map(\.jobId), [3])
    }

    func testInvalidJobWithOnlyOneWorkerFailsOnSecondRejection() {
        var table = makeTable()
        _ = hello(&table, a)
        let job = jobs(table.submit(jobs: scoreJobs(1), now: .zero), to: a)[0]
        let first = reply(&table, a, .error(WorkerError(jobId: job.jobId, code: 2, message: "invalid")))
        XCTAssertEqual(jobs(first, to: a), [job])
        XCTAssertNotNil(failed(reply(&table, a, .error(WorkerError(jobId: job.jobId, code: 2, message: "invalid")))))
    }

    // MARK: Misbehaving peers

    func testMalformedFrameDropsThePeerAndRequeuesItsJobs() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = table.submit(jobs: scoreJobs(2), now: .zero)
        let jobA = jobs(out, to: a)[0]
        let dropped = table.malformed(from: a, reason: "bad magic", now: ms(10))
        XCTAssertTrue(isDisconnect(messages(dropped, to: a)[0]))
        XCTAssertTrue(events(dropped).contains(.jobRequeued(jobId: jobA.jobId, reason: "worker w10 lost")))
        XCTAssertEqual(table.liveWorkerCount, 1)
        let next = result(&table, b, jobs(out, to: b)[0], at: ms(20))
        XCTAssertEqual(jobs(next, to: b), [jobA])
        XCTAssertNotNil(completed(result(&table, b, jobA, at: ms(30))))
    }

    func testProtocolViolationDropsThePeer() {
        var table = makeTable()
        _ = hello(&table, a)
        let out = reply(&table, a, .welcome(Welcome(heartbeatIntervalMs: 1, livenessMs: 1)))
        XCTAssertTrue(isDisconnect(messages(out, to: a)[0]))
        XCTAssertEqual(table.liveWorkerCount, 0)
    }

    func testUnreachablePeerIsForgotten() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = hello(&table, b)
        let out = table.submit(jobs: scoreJobs(2), now: .zero)
        let lost = table.peerUnreachable(a, now: ms(5))
        XCTAssertTrue(messages(lost, to: a).isEmpty, "nothing can be sent to an unreachable peer")
        XCTAssertEqual(table.liveWorkerCount, 1)
        let next = result(&table, b, jobs(out, to: b)[0])
        XCTAssertEqual(jobs(next, to: b), jobs(out, to: a))
    }

    func testWorkerJoiningMidBatchGetsWorkAtOnce() {
        var table = makeTable()
        _ = hello(&table, a)
        let out = table.submit(jobs: scoreJobs(3), now: .zero)
        XCTAssertEqual(jobs(out, to: a).map(\.jobId), [1])
        let joined = hello(&table, b, threads: 2, at: ms(50))
        XCTAssertEqual(weightsSent(joined, to: b), [1])
        XCTAssertEqual(jobs(joined, to: b).map(\.jobId), [2, 3])
    }

    func testShutdownSendsStandbyAndFailsTheBatch() {
        var table = makeTable()
        _ = hello(&table, a)
        _ = table.submit(jobs: scoreJobs(2), now: .zero)
        let out = table.shutdown(now: ms(1))
        XCTAssertEqual(messages(out, to: a), [.standby])
        XCTAssertNotNil(failed(out))
        XCTAssertEqual(table.liveWorkerCount, 0)
    }
}
