import Foundation
import Engine
import Protocol

/// Runs jobs on remote workers over ZeroMQ: the thin shell around `WorkerTable`.
///
/// A dedicated I/O thread owns the ROUTER socket and the table, so heartbeats keep flowing while
/// the search does other work between `run` calls. Callers talk to it through a locked command
/// queue plus an inproc PAIR socket that wakes its poll.
public final class ClusterRunner: JobRunner, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var heartbeatInterval: Duration
        /// Silence longer than this declares a worker dead; its jobs go to others.
        public var liveness: Duration
        public var maxWorkers: Int
        public var maxJobsPerBatch: Int
        /// When set, workers announcing another engine version are turned away.
        public var engineVersion: UInt32?
        /// `run` throws if a batch takes longer; nil waits as long as it takes workers to come.
        public var batchTimeout: Duration?
        /// CurveZMQ server settings (`.server` role): all traffic is encrypted and only workers
        /// whose public key is authorized complete the handshake. Nil: plain ZMTP.
        public var security: CurveSecurity?
        /// The run's search space, told to workers when they join.
        public var space: String = ""

        public init(heartbeatInterval: Duration = .seconds(1), liveness: Duration = .seconds(3),
                    maxWorkers: Int = 1024, maxJobsPerBatch: Int = 1 << 20,
                    engineVersion: UInt32? = nil, batchTimeout: Duration? = nil, security: CurveSecurity? = nil) {
            self.heartbeatInterval = heartbeatInterval
            self.liveness = liveness
            self.maxWorkers = maxWorkers
            self.maxJobsPerBatch = maxJobsPerBatch
            self.engineVersion = engineVersion
            self.batchTimeout = batchTimeout
            self.security = security
        }
    }

    /// The bound endpoint with wildcards resolved (e.g. the port chosen for "tcp://127.0.0.1:*").
    public let endpoint: String
    private let shared: Shared
    /// Serialises `run` calls: the table holds one batch at a time.
    private let runLock = NSLock()
    /// With `security`: the ZAP handler of the context, bound before the ROUTER, stopped after it.
    private let authenticator: ZAPAuthenticator?

    /// Binds `endpoint` and starts the I/O thread. `onEvent` is called on that thread (and, with
    /// `security`, `.workerRefused` on the ZAP handler's thread, never concurrently); it must not
    /// block or call back into the runner.
    /// With `configuration.security` the context must not already have a ZAP handler.
    public init(bind endpoint: String, configuration: Configuration = Configuration(), context: ZMQContext? = nil,
                onEvent: (@Sendable (ClusterEvent) -> Void)? = nil) throws {
        let context = try context ?? ZMQContext()
        let onEvent = onEvent.map { report in
            let lock = NSLock()
            return { @Sendable (event: ClusterEvent) in lock.withLock { report(event) } }
        }
        let shared = Shared()
        var curveSecretKey: String?
        var authenticator: ZAPAuthenticator?
        if let security = configuration.security {
            guard case .server(let keyPair, let authorizedKeys) = security.role else {
                throw RunnerError("ClusterRunner needs CURVE server settings (the coordinator's key pair), not client settings")
            }
            curveSecretKey = keyPair.secretKey
            // A dead handler would leave the ROUTER admitting every key: the runner stops with it.
            authenticator = try ZAPAuthenticator(
                context: context, authorizedKeys: authorizedKeys, domain: CurveSecurity.zapDomain,
                onRefusal: { refusal in onEvent?(.workerRefused(address: refusal.address, reason: refusal.reason)) },
                onFailure: { reason in shared.abort(reason) })
        }
        let settings = WorkerTable.Settings(
            heartbeatInterval: configuration.heartbeatInterval, liveness: configuration.liveness,
            maxWorkers: configuration.maxWorkers, maxJobsPerBatch: configuration.maxJobsPerBatch,
            engineVersion: configuration.engineVersion, space: configuration.space)
        let wakeEndpoint = "inproc://ctnas-cluster-wake-\(UInt64.random(in: .min ... .max))"
        let loop = IOLoop(shared: shared, context: context, settings: settings,
                          batchTimeout: configuration.batchTimeout, onEvent: onEvent)
        let secretKey = curveSecretKey
        let thread = Thread { loop.run(bind: endpoint, wakeEndpoint: wakeEndpoint, curveSecretKey: secretKey) }
        thread.name = "ctnas-cluster-io"
        thread.start()
        do {
            self.endpoint = try shared.waitUntilStarted()
        } catch {
            authenticator?.stop()
            throw error
        }
        self.shared = shared
        self.authenticator = authenticator
        do {
            let waker = try ZMQSocket(context: context, kind: .pair)
            try waker.set(.lingerMs(0))
            try waker.connect(wakeEndpoint)
            shared.installWaker(waker)
        } catch {
            shutdown()
            throw error
        }
    }

    deinit {
        shutdown()
    }

    /// True if the ROUTER speaks CURVE and a ZAP handler checks worker keys.
    public var isSecured: Bool { authenticator != nil }

    /// Replaces the set of admitted worker public keys (Z85) without a restart: new handshakes use
    /// it at once; workers already connected stay. Throws if the runner was built without security.
    public func reloadAuthorizedKeys(_ keys: Set<String>) throws {
        guard let authenticator else { throw RunnerError("the cluster runner was started without CURVE security") }
        for key in keys where !CurveKeyPair.isValidKey(key) {
            throw RunnerError("not a 40-character Z85 public key: '\(key)'")
        }
        authenticator.reload(authorizedKeys: keys)
    }

    /// The worker public keys currently admitted; nil without security.
    public var authorizedKeys: Set<String>? { authenticator?.authorizedKeys }

    public var liveWorkerCount: Int { shared.liveWorkers }

    /// Blocks until at least `count` workers are registered.
    public func waitForWorkers(count: Int, timeout: Duration) throws {
        try shared.waitForWorkers(count, timeout: timeout)
    }

    public func publish(_ weights: Weights) throws {
        try shared.enqueue(.publish(weights))
    }

    public func run(_ jobs: [JobPayload]) throws -> [ResultPayload] {
        runLock.lock()
        defer { runLock.unlock() }
        return try shared.submitAndWait(jobs)
    }

    /// Sends standby to every worker (they finish their jobs and exit), closes the socket and
    /// joins the I/O thread. A `run` in progress fails. Idempotent.
    public func shutdown() {
        shared.stop()
        // Only now that the ROUTER is closed: without a handler libzmq would admit any key.
        authenticator?.stop()
    }
}

// MARK: - State shared between callers and the I/O thread

private enum Command {
    case publish(Weights)
    case submit([JobPayload])
    case shutdown
}

private final class Shared: @unchecked Sendable {
    private let condition = NSCondition()
    private var commands: [Command] = []
    private var started: Result<String, any Error>?
    private var outcome: Result<[ResultPayload], RunnerError>?
    private var waitingForOutcome = false
    private var finished = false
    private var stopRequested = false
    private var fatal: String?
    /// Why the runner was stopped from inside (the ZAP handler died), reported as fatal.
    private var abortReason: String?
    private var workers = 0
    /// Caller side of the wake-up pair; used by any caller thread, always under `condition`.
    private var waker: ZMQSocket?

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    // Callers

    func waitUntilStarted() throws -> String {
        try locked {
            while started == nil { condition.wait() }
            return try started!.get()
        }
    }

    func installWaker(_ socket: ZMQSocket) {
        locked { waker = socket }
        wake()
    }

    var liveWorkers: Int { locked { workers } }

    func enqueue(_ command: Command) throws {
        try locked {
            if let why = closedReason { throw RunnerError(why) }
            commands.append(command)
            sendWake()
        }
    }

    func submitAndWait(_ jobs: [JobPayload]) throws -> [ResultPayload] {
        try locked {
            if let why = closedReason { throw RunnerError(why) }
            outcome = nil
            waitingForOutcome = true
            commands.append(.submit(jobs))
            sendWake()
            while outcome == nil { condition.wait() }
            waitingForOutcome = false
            defer { outcome = nil }
            return try outcome!.get()
        }
    }

    func waitForWorkers(_ count: Int, timeout: Duration) throws {
        let deadline = Date().addingTimeInterval(Self.seconds(timeout))
        try locked {
            while workers < count {
                if let why = closedReason { throw RunnerError(why) }
                if !condition.wait(until: deadline) && workers < count {
                    throw RunnerError("timed out waiting for \(count) worker(s); \(workers) connected")
                }
            }
        }
    }

    func stop() {
        locked {
            if !stopRequested && !finished {
                stopRequested = true
                commands.append(.shutdown)
                sendWake()
            }
            while !finished && started != nil { condition.wait() }
            waker?.close()
            waker = nil
        }
    }

    /// Stops the runner from any thread without waiting; `run` and later calls fail with `reason`.
    func abort(_ reason: String) {
        locked {
            if abortReason == nil { abortReason = reason }
            if !stopRequested && !finished {
                stopRequested = true
                commands.append(.shutdown)
                sendWake()
            }
        }
    }

    private var closedReason: String? {
        if let why = fatal ?? abortReason { return "cluster I/O failed: \(why)" }
        if stopRequested || finished { return "cluster runner is shut down" }
        return nil
    }

    private func wake() { locked { sendWake() } }

    /// A full queue already holds a pending wake-up, so a failed send loses nothing.
    private func sendWake() {
        _ = try? waker?.send([[]], dontWait: true)
    }

    // I/O thread

    func reportStarted(_ result: Result<String, any Error>) {
        locked {
            started = result
            if case .failure = result { finished = true }
            condition.broadcast()
        }
    }

    func takeCommands() -> [Command] {
        locked {
            defer { commands.removeAll() }
            return commands
        }
    }

    func setWorkers(_ n: Int) {
        locked {
            if workers != n {
                workers = n
                condition.broadcast()
            }
        }
    }

    func deliver(_ result: Result<[ResultPayload], RunnerError>) {
        locked {
            guard waitingForOutcome, outcome == nil else { return }
            outcome = result
            condition.broadcast()
        }
    }

    func finish(error: String?) {
        locked {
            fatal = error ?? abortReason
            finished = true
            workers = 0
            if waitingForOutcome && outcome == nil {
                outcome = .failure(RunnerError(fatal.map { "cluster I/O failed: \($0)" } ?? "cluster runner is shut down"))
            }
            condition.broadcast()
        }
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) * 1e-18
    }
}

// MARK: - The I/O thread

private final class IOLoop: @unchecked Sendable {
    private let shared: Shared
    private let context: ZMQContext
    private var table: WorkerTable
    private let batchTimeout: Duration?
    private let onEvent: (@Sendable (ClusterEvent) -> Void)?
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var deadline: ContinuousClock.Instant?

    init(shared: Shared, context: ZMQContext, settings: WorkerTable.Settings, batchTimeout: Duration?,
         onEvent: (@Sendable (ClusterEvent) -> Void)?) {
        self.shared = shared
        self.context = context
        self.table = WorkerTable(settings: settings)
        self.batchTimeout = batchTimeout
        self.onEvent = onEvent
        origin = clock.now
    }

    private var now: Duration { clock.now - origin }

    func run(bind endpoint: String, wakeEndpoint: String, curveSecretKey: String?) {
        let router: ZMQSocket, wake: ZMQSocket
        do {
            router = try ZMQSocket(context: context, kind: .router)
            // Per-peer queues are bounded below ZeroMQ's default of 1000 messages: a worker never
            // has more than its capacity (≤ 256 jobs) plus weights and heartbeats in flight.
            try router.set([.routerMandatory(true), .maxMessageSize(Int64(Wire.maxMessageSize)), .lingerMs(0),
                            .sendHighWaterMark(512), .receiveHighWaterMark(512)])
            if let curveSecretKey {
                try router.curveServer(secretKey: curveSecretKey)
                try router.set(.zapDomain(CurveSecurity.zapDomain))
            }
            try router.bind(endpoint)
            wake = try ZMQSocket(context: context, kind: .pair)
            try wake.set(.lingerMs(0))
            try wake.bind(wakeEndpoint)
            shared.reportStarted(.success(try router.lastEndpoint))
        } catch {
            shared.reportStarted(.failure(error))
            return
        }
        do {
            try loop(router: router, wake: wake)
            shared.finish(error: nil)
        } catch {
            shared.finish(error: "\(error)")
        }
        router.close()
        wake.close()
    }

    private func loop(router: ZMQSocket, wake: ZMQSocket) throws {
        var poller = ZMQPoller()
        poller.add(router)
        poller.add(wake)
        let tickEvery = min(max(table.settings.heartbeatInterval / 4, .milliseconds(1)), .milliseconds(250))
        var nextTick = now
        while true {
            let ready = try poller.poll(timeoutMs: max(0, Int(WorkerTable.milliseconds(nextTick - now))))
            if ready[1].contains(.pollIn) {
                while try wake.receive(dontWait: true) != nil {}
                for command in shared.takeCommands() {
                    switch command {
                    case .publish(let w):
                        table.publish(weights: w)
                    case .submit(let jobs):
                        deadline = batchTimeout.map { clock.now + $0 }
                        try perform(table.submit(jobs: jobs, now: now), on: router)
                    case .shutdown:
                        // Linger so standby reaches the workers before the socket goes.
                        try perform(table.shutdown(now: now), on: router)
                        try? router.set(.lingerMs(500))
                        return
                    }
                }
            }
            if ready[0].contains(.pollIn) {
                // Bounded so a flood from one peer cannot starve commands and ticks.
                for _ in 0..<1000 {
                    guard let frames = try router.receive(dontWait: true) else { break }
                    try handle(frames, on: router)
                }
            }
            if now >= nextTick {
                try perform(table.tick(now: now), on: router)
                nextTick = now + tickEvery
            }
            if let d = deadline, clock.now >= d {
                try perform(table.cancelBatch(reason: "batch did not complete within \(batchTimeout!)"), on: router)
            }
            shared.setWorkers(table.liveWorkerCount)
        }
    }

    private func handle(_ frames: [[UInt8]], on router: ZMQSocket) throws {
        guard let id = frames.first else { return }
        let peer = PeerID(id)
        guard frames.count == 2 else {
            try perform(table.malformed(from: peer, reason: "\(frames.count - 1) frames, expected 1", now: now), on: router)
            return
        }
        let directives: [WorkerTable.Directive]
        do {
            let envelope = try Wire.decode(frames[1])
            directives = table.receive(from: peer, envelope: envelope, now: now)
        } catch {
            directives = table.malformed(from: peer, reason: "\(error)", now: now)
        }
        try perform(directives, on: router)
    }

    private func perform(_ directives: [WorkerTable.Directive], on router: ZMQSocket) throws {
        var queue = directives
        var k = 0
        while k < queue.count {
            defer { k += 1 }
            switch queue[k] {
            case .send(let peer, let envelope):
                var delivered = false
                do {
                    delivered = try router.send([peer.bytes, Wire.encode(envelope)], dontWait: true)
                } catch let error as ZMQError where error.isHostUnreachable {
                    delivered = false
                }
                // Unknown routing id, or a full queue: a worker that stopped reading would hold
                // its jobs forever, so both count as lost.
                if !delivered { queue += table.peerUnreachable(peer, now: now) }
            case .completed(let results):
                deadline = nil
                shared.deliver(.success(results))
            case .failed(let reason):
                deadline = nil
                shared.deliver(.failure(RunnerError(reason)))
            case .log(let event):
                onEvent?(event)
            }
        }
    }
}
