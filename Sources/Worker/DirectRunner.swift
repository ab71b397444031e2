import Dispatch
import Engine
import Protocol

/// Runs jobs in this process with no messaging at all: for tests and single-machine commands
/// that need no cluster. Jobs of one `run` call execute concurrently on up to `threads` threads.
public final class DirectRunner: JobRunner {
    private var executor: JobExecutor
    private let threads: Int

    public init(executor: JobExecutor, threads: Int = 1) {
        self.executor = executor
        self.threads = max(1, threads)
    }

    public func publish(_ weights: Weights) throws {
        try executor.install(weights)
    }

    public func run(_ jobs: [JobPayload]) throws -> [ResultPayload] {
        let executor = executor
        var outcomes = [Result<ResultPayload, JobExecutor.Failure>?](repeating: nil, count: jobs.count)
        if threads == 1 || jobs.count == 1 {
            for (k, job) in jobs.enumerated() { outcomes[k] = executor.execute(job) }
        } else {
            let box = OutcomeBox(count: jobs.count)
            let lanes = min(threads, jobs.count)
            DispatchQueue.concurrentPerform(iterations: lanes) { lane in
                for k in stride(from: lane, to: jobs.count, by: lanes) { box.set(k, executor.execute(jobs[k])) }
            }
            outcomes = box.values
        }
        return try outcomes.map { outcome in
            switch outcome! {
            case .success(let result): return result
            case .failure(let failure): throw RunnerError("job failed: \(failure)")
            }
        }
    }
}

/// Each lane writes distinct indices, so unsynchronised writes to separate slots are safe.
private final class OutcomeBox: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<ResultPayload, JobExecutor.Failure>?>
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }
    deinit { slots.deinitialize().deallocate() }
    func set(_ index: Int, _ value: Result<ResultPayload, JobExecutor.Failure>) { slots[index] = value }
    var values: [Result<ResultPayload, JobExecutor.Failure>?] { Array(slots) }
}
