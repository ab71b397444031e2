import Engine

/// One frame on the wire. The request id lets replies (welcome, result, error) be matched to the
/// request that caused them without relying on ordering across reconnects.
public struct Envelope: Sendable, Equatable {
    public var requestId: UInt64
    public var message: Message

    public init(requestId: UInt64, message: Message) {
        self.requestId = requestId
        self.message = message
    }
}

public enum Message: Sendable, Equatable {
    /// Worker → coordinator, first message on a connection.
    case hello(Hello)
    /// Coordinator → worker, reply to `hello`.
    case welcome(Welcome)
    /// Either way; any traffic counts as liveness, this is only sent when there is nothing else.
    case heartbeat
    /// Either way; the sender is going away and expects no reply.
    case disconnect(reason: String)
    /// Coordinator → worker: finish the current job, ask for no more (graceful shutdown).
    case standby
    case weights(Weights)
    case job(Job)
    case result(JobResult)
    case error(WorkerError)
}

public struct Hello: Sendable, Equatable {
    public var workerId: String
    public var threads: UInt16
    public var engineVersion: UInt32
    /// Reserved bitset so future features can be negotiated without a protocol version bump.
    public var capabilities: UInt32

    public init(workerId: String, threads: UInt16, engineVersion: UInt32, capabilities: UInt32 = 0) {
        self.workerId = workerId
        self.threads = threads
        self.engineVersion = engineVersion
        self.capabilities = capabilities
    }
}

public struct Welcome: Sendable, Equatable {
    public var heartbeatIntervalMs: UInt32
    /// Silence longer than this means the peer is dead.
    public var livenessMs: UInt32
    /// The search space of the coordinator's run, so a worker needs no setting of its own
    /// ("" when the coordinator does not say).
    public var space: String

    public init(heartbeatIntervalMs: UInt32, livenessMs: UInt32, space: String = "") {
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.livenessMs = livenessMs
        self.space = space
    }
}

public struct Weights: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, Equatable {
        case comparator = 1
        case controller = 2
    }

    public var kind: Kind
    public var version: UInt64
    public var parameters: [Float]

    public init(kind: Kind, version: UInt64, parameters: [Float]) {
        self.kind = kind
        self.version = version
        self.parameters = parameters
    }
}

public struct Job: Sendable, Equatable {
    public var jobId: UInt64
    public var payload: JobPayload

    public init(jobId: UInt64, payload: JobPayload) {
        self.jobId = jobId
        self.payload = payload
    }
}

public enum JobPayload: Sendable, Equatable {
    /// Result: `.scores`, one probability per pair.
    case score(ScoreJob)
    /// Result: `.comparatorGradient`.
    case comparatorGradient(ComparatorGradientJob)
    /// Result: `.policyGradient`.
    case policyGradient(PolicyGradientJob)
}

/// Two indices into a job's `cells`; the associated value (score or target) is
/// P(candidate beats reference).
public struct CellPair: Sendable, Equatable {
    public var candidate: UInt32
    public var reference: UInt32

    public init(candidate: UInt32, reference: UInt32) {
        self.candidate = candidate
        self.reference = reference
    }
}

public struct ScoreJob: Sendable, Equatable {
    public var comparatorVersion: UInt64
    /// Sent once and indexed by `pairs`, because the same cell usually appears in many pairs.
    public var cells: [GraphEncoding]
    public var pairs: [CellPair]

    public init(comparatorVersion: UInt64, cells: [GraphEncoding], pairs: [CellPair]) {
        self.comparatorVersion = comparatorVersion
        self.cells = cells
        self.pairs = pairs
    }
}

public struct ComparatorGradientJob: Sendable, Equatable {
    public var comparatorVersion: UInt64
    public var cells: [GraphEncoding]
    public var pairs: [CellPair]
    /// One per pair, in [0, 1].
    public var targets: [Float]

    public init(comparatorVersion: UInt64, cells: [GraphEncoding], pairs: [CellPair], targets: [Float]) {
        self.comparatorVersion = comparatorVersion
        self.cells = cells
        self.pairs = pairs
        self.targets = targets
    }
}

public struct PolicyGradientJob: Sendable, Equatable {
    public var controllerVersion: UInt64
    public var entropyCoefficient: Float
    /// Controller decision sequences, one per sample.
    public var sequences: [[UInt16]]
    /// One per sequence.
    public var advantages: [Float]

    public init(controllerVersion: UInt64, entropyCoefficient: Float, sequences: [[UInt16]], advantages: [Float]) {
        self.controllerVersion = controllerVersion
        self.entropyCoefficient = entropyCoefficient
        self.sequences = sequences
        self.advantages = advantages
    }
}

public struct JobResult: Sendable, Equatable {
    public var jobId: UInt64
    public var payload: ResultPayload

    public init(jobId: UInt64, payload: ResultPayload) {
        self.jobId = jobId
        self.payload = payload
    }
}

public enum ResultPayload: Sendable, Equatable {
    /// P(candidate beats reference), one per pair of the score job.
    case scores([Float])
    case comparatorGradient(ComparatorGradientResult)
    case policyGradient(PolicyGradientResult)
}

/// Sums rather than means so the coordinator can merge shards from several workers exactly.
public struct ComparatorGradientResult: Sendable, Equatable {
    public var gradient: [Float]
    public var pairCount: UInt32
    public var lossSum: Double
    /// Pairs whose predicted side (above/below 0.5) matched the target's.
    public var correct: UInt32

    public init(gradient: [Float], pairCount: UInt32, lossSum: Double, correct: UInt32) {
        self.gradient = gradient
        self.pairCount = pairCount
        self.lossSum = lossSum
        self.correct = correct
    }
}

/// Sums rather than means so the coordinator can merge shards from several workers exactly.
public struct PolicyGradientResult: Sendable, Equatable {
    public var gradient: [Float]
    public var sampleCount: UInt32
    public var logProbabilitySum: Double
    public var entropySum: Double

    public init(gradient: [Float], sampleCount: UInt32, logProbabilitySum: Double, entropySum: Double) {
        self.gradient = gradient
        self.sampleCount = sampleCount
        self.logProbabilitySum = logProbabilitySum
        self.entropySum = entropySum
    }
}

/// A job the worker could not complete.
public struct WorkerError: Sendable, Equatable {
    public var jobId: UInt64
    public var code: UInt16
    public var message: String

    public init(jobId: UInt64, code: UInt16, message: String) {
        self.jobId = jobId
        self.code = code
        self.message = message
    }
}
