import Engine
import Protocol

/// What the coordinator reports to the search for its metrics and logs.
public enum ClusterEvent: Sendable, Equatable, CustomStringConvertible {
    case workerJoined(worker: String, threads: Int)
    /// Declared dead, dropped for misbehaving, unreachable, or left on its own.
    case workerLost(worker: String, reason: String)
    /// A job went back to the pending queue; the batch still completes with identical results.
    case jobRequeued(jobId: UInt64, reason: String)
    case messageDropped(from: String, reason: String)
    /// A connection the ZAP handler turned away during the CURVE handshake (unknown key, no CURVE).
    case workerRefused(address: String, reason: String)

    public var description: String {
        switch self {
        case .workerJoined(let w, let t): "worker \(w) joined with \(t) thread(s)"
        case .workerLost(let w, let why): "worker \(w) lost: \(why)"
        case .jobRequeued(let id, let why): "job \(id) requeued: \(why)"
        case .messageDropped(let from, let why): "dropped message from \(from): \(why)"
        case .workerRefused(let address, let why): "refused connection from \(address): \(why)"
        }
    }
}

/// A worker's address on the coordinator's ROUTER socket: its routing id.
struct PeerID: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var description: String {
        let digits = Array("0123456789abcdef")
        return "peer " + String(bytes.prefix(16).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}

/// The coordinator's worker table and job ledger as a pure state machine, after the shape of
/// swift-cluster-membership's SWIMInstance: it owns no socket, clock or thread. The shell feeds it
/// events with the current time and performs the directives it returns, so every rule below can be
/// tested by replaying events with a fake clock.
///
/// Time is a `Duration` since any fixed origin the caller chooses; it must never go backwards.
///
/// Determinism: a result is a pure function of (weights version, payload), so the table is free
/// to move jobs between workers; results are handed back in job order.
struct WorkerTable {
    struct Settings: Sendable, Equatable {
        var heartbeatInterval: Duration = .seconds(1)
        /// Silence longer than this declares a worker dead (Paranoid Pirate's liveness × interval).
        var liveness: Duration = .seconds(3)
        var maxWorkers = 1024
        var maxJobsPerBatch = 1 << 20
        /// Caps the capacity a worker may claim, so one hello cannot soak up a whole batch.
        var maxThreadsPerWorker = 256
        /// How often one job may come back with "missing weights" before the batch is given up:
        /// weights are resent each time, so repeats mean the worker cannot install them.
        var maxMissingWeightsRetries = 5
        /// When set, a worker announcing another engine version is turned away.
        var engineVersion: UInt32? = nil
        /// Told to workers in `welcome`, so they configure themselves for the run's space.
        var space = ""
    }

    enum Directive: Equatable {
        case send(PeerID, Envelope)
        case completed(batchResults: [ResultPayload])
        case failed(reason: String)
        case log(ClusterEvent)
    }

    private struct Worker {
        let workerId: String
        let capacity: Int
        /// Join order; ties in scheduling go to the earlier joiner so assignment is reproducible.
        let order: UInt64
        var inFlight: Set<UInt64> = []
        var lastHeard: Duration
        var lastSent: Duration
        /// Versions already sent on this connection, so each goes once per worker.
        var weightsSent: [Weights.Kind: UInt64] = [:]
    }

    private struct Batch {
        let firstJobId: UInt64
        let payloads: [JobPayload]
        var results: [ResultPayload?]
        var remaining: Int
        /// A stack: the last element is the next job to hand out, so requeueing at the front is O(1).
        var pending: [UInt64]
        var owner: [UInt64: PeerID] = [:]
        /// Workers that rejected a job as invalid once; a second rejection fails the batch.
        var rejectedBy: [UInt64: PeerID] = [:]
        var missingWeights: [UInt64: Int] = [:]

        func payload(_ jobId: UInt64) -> JobPayload? {
            guard jobId >= firstJobId, jobId - firstJobId < UInt64(payloads.count) else { return nil }
            return payloads[Int(jobId - firstJobId)]
        }
    }

    let settings: Settings
    private var workers: [PeerID: Worker] = [:]
    private var batch: Batch?
    private var weights: [Weights.Kind: Weights] = [:]
    private var nextJobId: UInt64 = 1
    private var nextRequestId: UInt64 = 1
    private var nextOrder: UInt64 = 0

    init(settings: Settings = Settings()) {
        self.settings = settings
    }

    var liveWorkerCount: Int { workers.count }
    var batchInProgress: Bool { batch != nil }

    // MARK: Inputs

    /// Latest weights of a kind; jobs must name exactly the newest published version, as with
    /// `JobExecutor`, which keeps only the newest. An older or equal version is ignored.
    mutating func publish(weights w: Weights) {
        if let held = weights[w.kind], held.version >= w.version { return }
        weights[w.kind] = w
    }

    /// Starts a batch; job ids continue from the previous batch and are never reused, so a late
    /// result from an earlier batch can never be mistaken for one of this batch.
    mutating func submit(jobs: [JobPayload], now: Duration) -> [Directive] {
        precondition(batch == nil, "one batch at a time")
        if jobs.isEmpty { return [.completed(batchResults: [])] }
        guard jobs.count <= settings.maxJobsPerBatch else {
            return [.failed(reason: "batch of \(jobs.count) jobs exceeds the limit of \(settings.maxJobsPerBatch)")]
        }
        for job in jobs {
            if let problem = weightsProblem(job) { return [.failed(reason: problem)] }
        }
        let first = nextJobId
        nextJobId += UInt64(jobs.count)
        batch = Batch(firstJobId: first, payloads: jobs, results: Array(repeating: nil, count: jobs.count),
                      remaining: jobs.count, pending: (first..<first + UInt64(jobs.count)).reversed())
        return dispatch(now: now)
    }

    mutating func receive(from peer: PeerID, envelope: Envelope, now: Duration) -> [Directive] {
        guard workers[peer] != nil else {
            switch envelope.message {
            case .hello(let hello):
                return register(peer, hello, requestId: envelope.requestId, now: now)
            case .disconnect:
                // Never answer a goodbye, or two forgetful ends could bounce disconnects forever.
                return [.log(.messageDropped(from: peer.description, reason: "disconnect from unknown peer"))]
            default:
                // A worker we declared dead learns from this to reconnect and say hello again.
                return [send(peer, .disconnect(reason: "unknown peer: send hello first"), now: now),
                        .log(.messageDropped(from: peer.description, reason: "\(kind(envelope.message)) from unknown peer"))]
            }
        }
        workers[peer]!.lastHeard = now
        switch envelope.message {
        case .heartbeat:
            return []
        case .hello(let hello):
            // Same connection announcing again: the worker restarted its session, so whatever it
            // held (jobs, weights) is gone.
            var out = forget(peer, reason: "said hello again")
            out += register(peer, hello, requestId: envelope.requestId, now: now)
            return out
        case .disconnect(let reason):
            return forget(peer, reason: "left: \(reason)") + dispatch(now: now)
        case .result(let r):
            return handleResult(peer, r, now: now)
        case .error(let e):
            return handleError(peer, e, now: now)
        case .welcome, .standby, .weights, .job:
            return drop(peer, reason: "protocol violation: worker sent \(kind(envelope.message))", now: now)
        }
    }

    /// The shell could not decode a frame from `peer` (or it had the wrong number of parts).
    mutating func malformed(from peer: PeerID, reason: String, now: Duration) -> [Directive] {
        guard workers[peer] != nil else {
            return [send(peer, .disconnect(reason: "malformed message"), now: now),
                    .log(.messageDropped(from: peer.description, reason: "malformed: \(reason)"))]
        }
        return drop(peer, reason: "malformed message: \(reason)", now: now)
    }

    /// A send to `peer` failed because ZeroMQ no longer knows it (EHOSTUNREACH) or it stopped
    /// draining its queue; its jobs would never come back.
    mutating func peerUnreachable(_ peer: PeerID, now: Duration) -> [Directive] {
        guard workers[peer] != nil else { return [] }
        return forget(peer, reason: "unreachable") + dispatch(now: now)
    }

    mutating func tick(now: Duration) -> [Directive] {
        var out: [Directive] = []
        for peer in orderedPeers() {
            let w = workers[peer]!
            if now - w.lastHeard > settings.liveness {
                out += forget(peer, reason: "silent for longer than \(settings.liveness)")
            } else if now - w.lastSent >= settings.heartbeatInterval {
                out.append(send(peer, .heartbeat, now: now))
            }
        }
        if !out.isEmpty { out += dispatch(now: now) }
        return out
    }

    /// Gives up the current batch (e.g. the caller's deadline passed).
    mutating func cancelBatch(reason: String) -> [Directive] {
        guard batch != nil else { return [] }
        return failBatch(reason)
    }

    /// Graceful shutdown: workers finish what they hold and ask for no more.
    mutating func shutdown(now: Duration) -> [Directive] {
        var out = orderedPeers().map { send($0, .standby, now: now) }
        workers.removeAll()
        if batch != nil { out += failBatch("coordinator shut down") }
        return out
    }

    // MARK: Workers

    private mutating func register(_ peer: PeerID, _ hello: Hello, requestId: UInt64, now: Duration) -> [Directive] {
        func refuse(_ why: String) -> [Directive] {
            [send(peer, .disconnect(reason: why), now: now),
             .log(.messageDropped(from: "\(hello.workerId) (\(peer))", reason: "hello refused: \(why)"))]
        }
        guard workers.count < settings.maxWorkers else { return refuse("cluster full (\(settings.maxWorkers) workers)") }
        if let expected = settings.engineVersion, hello.engineVersion != expected {
            return refuse("engine version \(hello.engineVersion), coordinator needs \(expected)")
        }
        let capacity = min(max(1, Int(hello.threads)), settings.maxThreadsPerWorker)
        workers[peer] = Worker(workerId: hello.workerId, capacity: capacity, order: nextOrder, lastHeard: now, lastSent: now)
        nextOrder += 1
        let welcome = Welcome(heartbeatIntervalMs: Self.milliseconds(settings.heartbeatInterval),
                              livenessMs: Self.milliseconds(settings.liveness), space: settings.space)
        var out: [Directive] = [.send(peer, Envelope(requestId: requestId, message: .welcome(welcome))),
                                .log(.workerJoined(worker: hello.workerId, threads: capacity))]
        out += dispatch(now: now)
        return out
    }

    /// Removes a worker and puts its jobs back at the front of the queue, lowest id first, so the
    /// order jobs are retried in does not depend on hash order.
    private mutating func forget(_ peer: PeerID, reason: String) -> [Directive] {
        guard let w = workers.removeValue(forKey: peer) else { return [] }
        var out: [Directive] = [.log(.workerLost(worker: w.workerId, reason: reason))]
        guard batch != nil else { return out }
        for jobId in w.inFlight.sorted().reversed() {
            batch!.owner[jobId] = nil
            batch!.pending.append(jobId)
        }
        for jobId in w.inFlight.sorted() {
            out.append(.log(.jobRequeued(jobId: jobId, reason: "worker \(w.workerId) lost")))
        }
        return out
    }

    private mutating func drop(_ peer: PeerID, reason: String, now: Duration) -> [Directive] {
        var out = [send(peer, .disconnect(reason: reason), now: now)]
        out += forget(peer, reason: reason)
        out += dispatch(now: now)
        return out
    }

    private func orderedPeers() -> [PeerID] {
        workers.sorted { $0.value.order < $1.value.order }.map(\.key)
    }

    // MARK: Results

    private mutating func handleResult(_ peer: PeerID, _ r: JobResult, now: Duration) -> [Directive] {
        guard let b = batch, b.owner[r.jobId] == peer, let payload = b.payload(r.jobId) else {
            return [.log(.messageDropped(from: workers[peer]!.workerId,
                                         reason: "result for job \(r.jobId), which is not in flight there"))]
        }
        if let problem = shapeProblem(payload, r.payload) {
            return drop(peer, reason: "result for job \(r.jobId) does not fit the job: \(problem)", now: now)
        }
        release(r.jobId, from: peer)
        batch!.results[Int(r.jobId - b.firstJobId)] = r.payload
        batch!.remaining -= 1
        if batch!.remaining == 0 {
            let results = batch!.results.map { $0! }
            batch = nil
            return [.completed(batchResults: results)]
        }
        return dispatch(now: now)
    }

    private mutating func handleError(_ peer: PeerID, _ e: WorkerError, now: Duration) -> [Directive] {
        let workerId = workers[peer]!.workerId
        guard let b = batch, b.owner[e.jobId] == peer, let payload = b.payload(e.jobId) else {
            return [.log(.messageDropped(from: workerId, reason: "error for job \(e.jobId), which is not in flight there"))]
        }
        release(e.jobId, from: peer)
        if e.code == 1 {
            // The worker lost or never installed the weights: forget what we sent so they go again.
            let (kind, _) = Self.requirement(payload)
            workers[peer]!.weightsSent[kind] = nil
            let count = b.missingWeights[e.jobId, default: 0] + 1
            guard count <= settings.maxMissingWeightsRetries else {
                return failBatch("job \(e.jobId) kept failing with missing weights: \(e.message)")
            }
            batch!.missingWeights[e.jobId] = count
        } else {
            // Invalid (code 2, or a code this build does not know): a pure function fails the
            // same way everywhere, so one retry elsewhere only guards against a broken worker.
            if b.rejectedBy[e.jobId] != nil {
                return failBatch("job \(e.jobId) rejected twice (code \(e.code)): \(e.message)")
            }
            batch!.rejectedBy[e.jobId] = peer
        }
        batch!.pending.append(e.jobId)
        var out: [Directive] = [.log(.jobRequeued(jobId: e.jobId, reason: "worker \(workerId) error \(e.code): \(e.message)"))]
        out += dispatch(now: now)
        return out
    }

    private mutating func release(_ jobId: UInt64, from peer: PeerID) {
        batch!.owner[jobId] = nil
        workers[peer]!.inFlight.remove(jobId)
    }

    private mutating func failBatch(_ reason: String) -> [Directive] {
        if let b = batch {
            for (jobId, peer) in b.owner { workers[peer]?.inFlight.remove(jobId) }
        }
        batch = nil
        return [.failed(reason: reason)]
    }

    // MARK: Scheduling

    /// Fills free slots, least-loaded worker first (ties: earliest joined), so the assignment is a
    /// function of the event sequence alone.
    private mutating func dispatch(now: Duration) -> [Directive] {
        guard batch != nil else { return [] }
        var out: [Directive] = []
        var deferred: [UInt64] = []
        while let jobId = batch!.pending.last {
            let avoid = batch!.rejectedBy[jobId]
            guard let peer = pickWorker(avoiding: avoid) else {
                // Only the worker that rejected this job has room; others may take the next jobs.
                if avoid != nil, pickWorker(avoiding: nil) != nil {
                    deferred.append(batch!.pending.removeLast())
                    continue
                }
                break
            }
            batch!.pending.removeLast()
            let payload = batch!.payload(jobId)!
            if let problem = weightsProblem(payload) { return out + failBatch(problem) }
            let (kind, version) = Self.requirement(payload)
            if workers[peer]!.weightsSent[kind] != version {
                out.append(send(peer, .weights(weights[kind]!), now: now))
                workers[peer]!.weightsSent[kind] = version
            }
            out.append(send(peer, .job(Job(jobId: jobId, payload: payload)), now: now))
            workers[peer]!.inFlight.insert(jobId)
            batch!.owner[jobId] = peer
        }
        batch!.pending.append(contentsOf: deferred.reversed())
        return out
    }

    private func pickWorker(avoiding avoid: PeerID?) -> PeerID? {
        // A job rejected by the only live worker goes back to it: the second rejection then fails
        // the batch instead of leaving it waiting for a worker that may never come.
        let avoid = workers.count > 1 ? avoid : nil
        var best: (peer: PeerID, load: Int, order: UInt64)?
        for (peer, w) in workers where peer != avoid && w.inFlight.count < w.capacity {
            let load = w.inFlight.count
            if best == nil || load < best!.load || (load == best!.load && w.order < best!.order) {
                best = (peer, load, w.order)
            }
        }
        return best?.peer
    }

    // MARK: Helpers

    private mutating func send(_ peer: PeerID, _ message: Message, now: Duration) -> Directive {
        workers[peer]?.lastSent = now
        defer { nextRequestId += 1 }
        return .send(peer, Envelope(requestId: nextRequestId, message: message))
    }

    static func requirement(_ payload: JobPayload) -> (Weights.Kind, UInt64) {
        switch payload {
        case .score(let j): return (.comparator, j.comparatorVersion)
        case .comparatorGradient(let j): return (.comparator, j.comparatorVersion)
        case .policyGradient(let j): return (.controller, j.controllerVersion)
        }
    }

    private func weightsProblem(_ payload: JobPayload) -> String? {
        let (kind, version) = Self.requirement(payload)
        guard let held = weights[kind] else { return "a job needs \(kind) weights version \(version); none published" }
        guard held.version == version else {
            return "a job needs \(kind) weights version \(version); the newest published is \(held.version)"
        }
        return nil
    }

    /// A result that cannot belong to its job means a broken or hostile worker; accepting it would
    /// break the promise that results do not depend on who computed them.
    private func shapeProblem(_ job: JobPayload, _ result: ResultPayload) -> String? {
        let parameterCount = weights[Self.requirement(job).0]?.parameters.count ?? 0
        switch (job, result) {
        case (.score(let j), .scores(let s)):
            return s.count == j.pairs.count ? nil : "\(s.count) scores for \(j.pairs.count) pairs"
        case (.comparatorGradient(let j), .comparatorGradient(let g)):
            if g.gradient.count != parameterCount { return "gradient of \(g.gradient.count), expected \(parameterCount)" }
            return Int(g.pairCount) == j.pairs.count ? nil : "pair count \(g.pairCount), expected \(j.pairs.count)"
        case (.policyGradient(let j), .policyGradient(let g)):
            if g.gradient.count != parameterCount { return "gradient of \(g.gradient.count), expected \(parameterCount)" }
            return Int(g.sampleCount) == j.sequences.count ? nil : "sample count \(g.sampleCount), expected \(j.sequences.count)"
        default:
            return "result kind does not match the job kind"
        }
    }

    private func kind(_ message: Message) -> String {
        switch message {
        case .hello: "hello"
        case .welcome: "welcome"
        case .heartbeat: "heartbeat"
        case .disconnect: "disconnect"
        case .standby: "standby"
        case .weights: "weights"
        case .job: "job"
        case .result: "result"
        case .error: "error"
        }
    }

    static func milliseconds(_ d: Duration) -> UInt32 {
        let (seconds, attoseconds) = d.components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return UInt32(clamping: max(0, ms))
    }
}
