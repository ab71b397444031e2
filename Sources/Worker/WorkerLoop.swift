import Foundation
import Engine
import Protocol

/// A worker process's connection to the coordinator, after the ZeroMQ guide's Paranoid Pirate
/// worker: a DEALER that says hello, heartbeats both ways, and on silence or `disconnect` closes
/// its socket and reconnects with exponential back-off. Weights held survive reconnects; the
/// coordinator resends them if it thinks they are missing.
///
/// Jobs always run on a small pool of compute threads, even with `threads == 1`, so the thread in
/// `run()` keeps answering heartbeats while a long job computes; otherwise a job longer than the
/// liveness period would get the worker declared dead and the job reassigned forever.
public final class WorkerNode: @unchecked Sendable {
    public enum Event: Sendable, Equatable, CustomStringConvertible {
        case connecting(endpoint: String)
        case welcomed(heartbeatIntervalMs: UInt32, livenessMs: UInt32)
        case jobReceived(jobId: UInt64)
        case reconnecting(reason: String, afterMs: Int)
        /// An undecodable or unexpected frame from the coordinator, ignored.
        case ignored(reason: String)
        case standby
        case stopped

        public var description: String {
            switch self {
            case .connecting(let e): "connecting to \(e)"
            case .welcomed(let hb, let live): "welcomed (heartbeat \(hb) ms, liveness \(live) ms)"
            case .jobReceived(let id): "job \(id) received"
            case .reconnecting(let why, let ms): "reconnecting in \(ms) ms: \(why)"
            case .ignored(let why): "ignored frame: \(why)"
            case .standby: "standby: finishing current jobs"
            case .stopped: "stopped"
            }
        }
    }

    public struct Timing: Sendable {
        /// How long to wait for `welcome` after `hello` before reconnecting.
        public var helloTimeout: Duration
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(helloTimeout: Duration = .seconds(3), initialBackoff: Duration = .milliseconds(100),
                    maxBackoff: Duration = .seconds(5)) {
            self.helloTimeout = helloTimeout
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    private let endpoint: String
    private let initialExecutor: JobExecutor
    private let threads: Int
    private let workerId: String
    private let context: ZMQContext?
    private let timing: Timing
    private let security: CurveSecurity?
    private let onEvent: (@Sendable (Event) -> Void)?
    private let control = Control()

    /// `security`: CurveZMQ client settings (`.client` role: the worker's key pair and the
    /// coordinator's public key). A coordinator that does not know the key never answers the
    /// handshake, which looks like "no welcome": the worker keeps retrying with back-off.
    public init(endpoint: String, executor: JobExecutor, threads: Int = 1, workerId: String,
                context: ZMQContext? = nil, timing: Timing = Timing(), security: CurveSecurity? = nil,
                onEvent: (@Sendable (Event) -> Void)? = nil) {
        self.endpoint = endpoint
        self.initialExecutor = executor
        self.threads = min(max(1, threads), Int(UInt16.max))
        self.workerId = workerId
        self.context = context
        self.timing = timing
        self.security = security
        self.onEvent = onEvent
    }

    /// Ends `run()` soon, from any thread: jobs not yet reported are abandoned (the coordinator
    /// reassigns them) and the coordinator is told the worker is leaving. Permanent.
    public func stop() {
        control.stop()
    }

    /// Serves the coordinator until `stop()` or a `standby` (after finishing the jobs held).
    /// Throws if ZeroMQ itself fails (e.g. the context was shut down) or `run()` is already running.
    public func run() throws {
        if let security, security.isServer {
            throw RunnerError("WorkerNode needs CURVE client settings (its key pair and the coordinator's public key)")
        }
        guard control.begin() else { throw RunnerError("WorkerNode.run() is already running") }
        defer { control.end() }
        let context = try self.context ?? ZMQContext()
        let wakeEndpoint = "inproc://ctnas-worker-wake-\(UInt64.random(in: .min ... .max))"
        let wake = try ZMQSocket(context: context, kind: .pair)
        defer { wake.close() }
        try wake.set(.lingerMs(0))
        try wake.bind(wakeEndpoint)
        let waker = try ZMQSocket(context: context, kind: .pair)
        try waker.set(.lingerMs(0))
        try waker.connect(wakeEndpoint)
        control.install(waker)
        defer { control.uninstall() }

        let pool = ComputePool(threads: threads, notify: { [control] in control.wake() })
        defer { pool.shutdown() }
        var session = Session(node: self, context: context, wake: wake, pool: pool)
        var backoff = timing.initialBackoff
        connection: while !control.stopRequested {
            switch try session.serve() {
            case .finished:
                break connection
            case .reconnect(let reason, let welcomed):
                if welcomed { backoff = timing.initialBackoff }
                onEvent?(.reconnecting(reason: reason, afterMs: Int(Self.milliseconds(backoff))))
                if try session.sleep(backoff) { break connection }
                backoff = min(backoff * 2, timing.maxBackoff)
            }
        }
        onEvent?(.stopped)
    }

    fileprivate static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return max(0, s * 1000 + atto / 1_000_000_000_000_000)
    }

    // MARK: - One connection at a time

    private struct Session {
        enum Outcome { case finished, reconnect(reason: String, welcomed: Bool) }

        let node: WorkerNode
        let context: ZMQContext
        let wake: ZMQSocket
        let pool: ComputePool
        var executor: JobExecutor
        /// Weights that arrived but could not be installed: a job needing them is invalid here,
        /// which is better reported than "missing weights" resent forever.
        var installFailures: [Weights.Kind: (version: UInt64, message: String)] = [:]
        var generation: UInt64 = 0
        var nextRequestId: UInt64 = 1
        let clock = ContinuousClock()

        init(node: WorkerNode, context: ZMQContext, wake: ZMQSocket, pool: ComputePool) {
            self.node = node
            self.context = context
            self.wake = wake
            self.pool = pool
            self.executor = node.initialExecutor
        }

        /// Waits out a back-off; true if `stop()` came meanwhile.
        mutating func sleep(_ duration: Duration) throws -> Bool {
            let end = clock.now + duration
            var poller = ZMQPoller()
            poller.add(wake)
            while clock.now < end {
                if node.control.stopRequested { return true }
                _ = try poller.poll(timeoutMs: Int(WorkerNode.milliseconds(clock.now.duration(to: end))) + 1)
                while try wake.receive(dontWait: true) != nil {}
                _ = pool.takeDone()  // results for a connection that is gone
            }
            return node.control.stopRequested
        }

        mutating func serve() throws -> Outcome {
            generation += 1
            pool.discardQueued()
            let socket = try ZMQSocket(context: context, kind: .dealer)
            defer { socket.close() }
            try socket.set([.maxMessageSize(Int64(Wire.maxMessageSize)), .lingerMs(0)])
            if case .client(let keyPair, let serverPublicKey)? = node.security?.role {
                try socket.curveClient(serverPublicKey: serverPublicKey, publicKey: keyPair.publicKey, secretKey: keyPair.secretKey)
            }
            node.onEvent?(.connecting(endpoint: node.endpoint))
            try socket.connect(node.endpoint)

            let start = clock.now
            var lastHeard = start, lastSent = start
            var heartbeatInterval = Duration.seconds(1)
            var liveness = node.timing.helloTimeout
            var welcomed = false
            var standby = false

            func send(_ message: Message, requestId: UInt64? = nil) throws -> Bool {
                let id = requestId ?? nextRequestId
                if requestId == nil { nextRequestId += 1 }
                guard try socket.send([Wire.encode(Envelope(requestId: id, message: message))], dontWait: true) else {
                    return false
                }
                lastSent = clock.now
                return true
            }
            /// Lets queued replies reach the coordinator before the socket closes, briefly: after
            /// standby or stop they are a courtesy, and linger holds up the context's termination.
            func leave(_ reason: String) throws {
                try socket.set(.lingerMs(200))
                _ = try send(.disconnect(reason: reason))
            }

            let hello = Hello(workerId: node.workerId, threads: UInt16(node.threads), engineVersion: JobExecutor.engineVersion)
            guard try send(.hello(hello)) else { return .reconnect(reason: "could not queue hello", welcomed: false) }

            var poller = ZMQPoller()
            poller.add(socket)
            poller.add(wake)
            while true {
                let now = clock.now
                let due = min(lastSent + heartbeatInterval, lastHeard + liveness)
                let ready = try poller.poll(timeoutMs: Int(WorkerNode.milliseconds(now.duration(to: due))) + 1)

                if ready[1].contains(.pollIn) {
                    while try wake.receive(dontWait: true) != nil {}
                }
                if node.control.stopRequested {
                    try leave("worker stopping")
                    return .finished
                }
                for done in pool.takeDone() where done.generation == generation {
                    let message: Message
                    switch done.result {
                    case .success(let payload): message = .result(JobResult(jobId: done.jobId, payload: payload))
                    case .failure(let failure):
                        message = .error(WorkerError(jobId: done.jobId, code: failure.code, message: String(describing: failure)))
                    }
                    guard try send(message, requestId: done.requestId) else {
                        return .reconnect(reason: "coordinator is not draining its queue", welcomed: welcomed)
                    }
                }

                if ready[0].contains(.pollIn) {
                    for _ in 0..<1000 {
                        guard let frames = try socket.receive(dontWait: true) else { break }
                        guard frames.count == 1 else {
                            node.onEvent?(.ignored(reason: "\(frames.count) frames, expected 1"))
                            continue
                        }
                        let envelope: Envelope
                        do { envelope = try Wire.decode(frames[0]) } catch {
                            node.onEvent?(.ignored(reason: "\(error)"))
                            continue
                        }
                        lastHeard = clock.now
                        switch envelope.message {
                        case .welcome(let w):
                            guard !welcomed else { continue }
                            if !w.space.isEmpty && w.space != executor.spaceName {
                                guard let adopted = JobExecutor(spaceNamed: w.space) else {
                                    return .reconnect(reason: "coordinator runs search space '\(w.space)', which this worker does not know", welcomed: false)
                                }
                                executor = adopted
                            }
                            welcomed = true
                            heartbeatInterval = .milliseconds(min(max(Int64(w.heartbeatIntervalMs), 10), 60_000))
                            liveness = max(.milliseconds(Int64(min(w.livenessMs, 600_000))), heartbeatInterval)
                            node.onEvent?(.welcomed(heartbeatIntervalMs: w.heartbeatIntervalMs, livenessMs: w.livenessMs))
                        case .heartbeat:
                            break
                        case .disconnect(let reason):
                            return .reconnect(reason: "coordinator said disconnect: \(reason)", welcomed: welcomed)
                        case .standby:
                            if !standby { node.onEvent?(.standby) }
                            standby = true
                        case .weights(let w):
                            do {
                                try executor.install(w)
                                if installFailures[w.kind]?.version == w.version { installFailures[w.kind] = nil }
                            } catch {
                                installFailures[w.kind] = (w.version, error.description)
                            }
                        case .job(let job):
                            guard !standby else {
                                node.onEvent?(.ignored(reason: "job \(job.jobId) after standby"))
                                continue
                            }
                            node.onEvent?(.jobReceived(jobId: job.jobId))
                            let (kind, version) = Self.requirement(job.payload)
                            if !executor.holds(kind, version: version), let failure = installFailures[kind], failure.version == version {
                                let error = WorkerError(jobId: job.jobId, code: JobExecutor.Failure.invalidJob("").code, message: failure.message)
                                guard try send(.error(error), requestId: envelope.requestId) else {
                                    return .reconnect(reason: "coordinator is not draining its queue", welcomed: welcomed)
                                }
                            } else {
                                pool.submit(ComputePool.Task(generation: generation, requestId: envelope.requestId,
                                                             jobId: job.jobId, payload: job.payload, executor: executor))
                            }
                        case .hello, .result, .error:
                            node.onEvent?(.ignored(reason: "unexpected message from the coordinator"))
                        }
                    }
                }

                let after = clock.now
                if standby && pool.isIdle {
                    try leave("standby complete")
                    return .finished
                }
                if after - lastHeard > liveness {
                    return .reconnect(reason: welcomed ? "coordinator silent" : "no welcome", welcomed: welcomed)
                }
                if after - lastSent >= heartbeatInterval {
                    guard try send(.heartbeat) else {
                        return .reconnect(reason: "coordinator is not draining its queue", welcomed: welcomed)
                    }
                }
            }
        }

        static func requirement(_ payload: JobPayload) -> (Weights.Kind, UInt64) {
            switch payload {
            case .score(let j): return (.comparator, j.comparatorVersion)
            case .comparatorGradient(let j): return (.comparator, j.comparatorVersion)
            case .policyGradient(let j): return (.controller, j.controllerVersion)
            }
        }
    }
}

// MARK: - Stop flag and wake-up

/// The flag `stop()` sets and the caller side of the inproc pair that wakes `run()`'s poll. Any
/// thread may use the socket, always under the lock (which is also the memory barrier ZeroMQ
/// asks for when a socket changes threads).
private final class Control: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var running = false
    private var waker: ZMQSocket?

    /// One `run()` at a time: the wake-up socket and the session belong to it.
    func begin() -> Bool {
        lock.withLock {
            defer { running = true }
            return !running
        }
    }

    func end() { lock.withLock { running = false } }

    var stopRequested: Bool { lock.withLock { stopped } }

    func install(_ socket: ZMQSocket) { lock.withLock { waker = socket } }

    func uninstall() {
        lock.withLock {
            waker?.close()
            waker = nil
        }
    }

    func stop() {
        lock.withLock {
            stopped = true
            _ = try? waker?.send([[]], dontWait: true)
        }
    }

    /// A full queue already holds a wake-up, so a failed send loses nothing.
    func wake() {
        lock.withLock { _ = try? waker?.send([[]], dontWait: true) }
    }
}

// MARK: - Compute threads

private final class ComputePool: @unchecked Sendable {
    struct Task {
        let generation: UInt64
        let requestId: UInt64
        let jobId: UInt64
        let payload: JobPayload
        let executor: JobExecutor
    }

    struct Done {
        let generation: UInt64
        let requestId: UInt64
        let jobId: UInt64
        let result: Result<ResultPayload, JobExecutor.Failure>
    }

    private let condition = NSCondition()
    private var queue: [Task] = []
    private var head = 0
    private var done: [Done] = []
    private var running = 0
    private var closed = false
    private var alive: Int
    private let notify: @Sendable () -> Void

    init(threads: Int, notify: @escaping @Sendable () -> Void) {
        self.notify = notify
        alive = threads
        for k in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.name = "ctnas-worker-compute-\(k)"
            thread.start()
        }
    }

    func submit(_ task: Task) {
        condition.withLock {
            queue.append(task)
            condition.signal()
        }
    }

    func takeDone() -> [Done] {
        condition.withLock {
            defer { done.removeAll() }
            return done
        }
    }

    /// Tasks for a connection that is gone; the coordinator has requeued them elsewhere.
    func discardQueued() {
        condition.withLock {
            queue.removeAll()
            head = 0
            done.removeAll()
        }
    }

    var isIdle: Bool { condition.withLock { head == queue.count && running == 0 && done.isEmpty } }

    /// Lets running jobs finish, drops queued ones, and joins the threads.
    func shutdown() {
        condition.withLock {
            closed = true
            queue.removeAll()
            head = 0
            condition.broadcast()
            while alive > 0 { condition.wait() }
        }
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count && !closed { condition.wait() }
            if closed {
                alive -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let task = queue[head]
            head += 1
            if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
            running += 1
            condition.unlock()

            let result = task.executor.execute(task.payload)

            condition.withLock {
                running -= 1
                done.append(Done(generation: task.generation, requestId: task.requestId, jobId: task.jobId, result: result))
            }
            notify()
        }
    }
}
