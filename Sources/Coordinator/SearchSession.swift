import Foundation
import Engine
import Protocol

/// One search writing into an output folder: `metrics.jsonl` as it goes, `result.json` at the end.
public final class SearchSession {
    public let space: any SearchSpace
    public let options: SearchOptions
    public let output: URL
    let runner: JobRunner
    let metrics: MetricsLog
    let progress: (String) -> Void

    public let checkpoints: CheckpointStore
    let checkpointEvery: Int

    public enum Outcome {
        case finished(JSON)
        /// Stopped on request after writing a checkpoint.
        case interrupted
    }

    /// With `resume`, continues from the newest valid checkpoint in `output` (or from the start
    /// when the run was killed before its first one); otherwise starts afresh.
    public init(space: any SearchSpace, options: SearchOptions, output: String, runner: JobRunner,
                checkpointEvery: Int, resume: Bool, progress: @escaping (String) -> Void) throws {
        self.space = space
        self.options = options
        self.output = URL(fileURLWithPath: output)
        self.runner = runner
        self.progress = progress
        self.checkpointEvery = max(1, checkpointEvery)
        try FileManager.default.createDirectory(at: self.output, withIntermediateDirectories: true)
        checkpoints = CheckpointStore(directory: self.output)
        var state = SearchState(space: space, options: options)
        if resume, let restored = try checkpoints.loadNewest(space: space, warn: { progress("warning: \($0)") }) {
            guard restored.options == options else {
                throw CheckpointError(message: "the newest checkpoint in \(output) was made with other search options than its run.json")
            }
            state = restored
            progress("resuming from checkpoint: \(Self.position(state))")
        }
        initialState = state
        metrics = try MetricsLog(url: self.output.appendingPathComponent("metrics.jsonl"), keepingSearchEvents: state.eventCount)
    }

    let initialState: SearchState

    /// Live figures for a progress display, set before `run`: every metrics event goes to
    /// `onEvent` (and `progress` then gets only the messages that are not events), and
    /// `onStep` sees the state before the first step and after each one.
    public var onEvent: ((JSON) -> Void)?
    public var onStep: ((SearchState) -> Void)?

    static func position(_ state: SearchState) -> String {
        switch state.phase {
        case .pretraining: return "pre-training epoch \(state.epoch)"
        case .searching: return "iteration \(state.iteration)"
        case .finished: return "finished"
        }
    }

    /// For events that happen outside the search loop (workers joining or leaving); thread-safe.
    public func record(_ event: JSON) { metrics.append(event) }

    /// Runs the search to the end and writes `result.json`, checkpointing every
    /// `checkpointEvery` steps and at each phase boundary. `shouldStop` is polled between steps:
    /// when it answers true the session writes a checkpoint and returns `.interrupted`.
    public func run(workers: Int, shouldStop: () -> Bool = { false }) throws -> Outcome {
        let start = Date()
        let search = Search(space: space, state: initialState, runner: runner) { [metrics, progress, onEvent] event in
            metrics.append(event)
            if let onEvent { onEvent(event) } else if let line = SearchSession.progressLine(event) { progress(line) }
        }
        var stepsSinceCheckpoint = 0
        var phase = search.state.phase
        onStep?(search.state)
        while try search.step() {
            onStep?(search.state)
            stepsSinceCheckpoint += 1
            if shouldStop() {
                try checkpoints.save(search.state, space: space)
                progress("stopped on request; checkpoint written (\(Self.position(search.state))); resume with --resume \(output.path)")
                return .interrupted
            }
            if search.state.phase != phase || stepsSinceCheckpoint >= checkpointEvery {
                try checkpoints.save(search.state, space: space)
                stepsSinceCheckpoint = 0
                phase = search.state.phase
            }
        }
        onStep?(search.state)
        try checkpoints.save(search.state, space: space)
        let result = resultJSON(search, workers: workers, seconds: Date().timeIntervalSince(start))
        try Data((result.serialized(pretty: true) + "\n").utf8).write(to: output.appendingPathComponent("result.json"), options: .atomic)
        return .finished(result)
    }

    func resultJSON(_ search: Search, workers: Int, seconds: Double) -> JSON {
        let state = search.state
        let pick = search.pickRow
        let best = space.describe(row: pick)
        func summary(_ row: Int) -> JSON {
            .object([("hash", .string(space.describe(row: row).hash)), ("test_accuracy", .number(Double(space.testAccuracy(ofRow: row)))),
                     ("rank", .int(space.rank(ofRow: row)))])
        }
        var yardsticks: [(String, JSON)] = [("best_labelled", summary(search.bestLabelledRow))]
        if options.searchQueries > 0 {
            yardsticks += [("best_labelled_up_front", summary(search.bestLabelledUpFrontRow)),
                           ("pick_rule", .string("the highest-labelled cell, after labelling the curriculum's final choice")),
                           ("curriculum_best", summary(state.bestRow))]
        }
        return .object([
            ("space", .string(space.name)), ("seed", .int(Int(options.seed))), ("preset", .string(options.preset)),
            ("workers", .int(workers)), ("queries", .int(options.queries)), ("iterations", .int(options.iterations)),
            ("comparator", .object([("kendall_tau", .number(state.lastTau))])),
            ("best", .object([
                ("hash", .string(best.hash)), ("ops", .array(best.ops.map(JSON.string))),
                ("matrix", .array(best.matrix.map { .array($0.map(JSON.int)) })),
                ("test_accuracy", .number(Double(space.testAccuracy(ofRow: pick)))),
                ("rank", .int(space.rank(ofRow: pick))), ("percentile", .number(space.percentile(ofRow: pick))),
            ]))] + yardsticks + [
            ("label_note", .string(space.labelNote)),
            ("wall_seconds", .number(seconds)),
            ("state_digest", .string(state.digest)),
            ("blas_kernels", .string(blasKernelName)),
            ("options", .object(optionFields)),
        ])
    }

    var optionFields: [(String, JSON)] {
        [("comparator_epochs", .int(options.comparatorEpochs)), ("iterations", .int(options.iterations)),
         ("samples_per_update", .int(options.samplesPerUpdate)), ("baseline_every", .int(options.baselineEvery)),
         ("explore_every", .int(options.exploreEvery)), ("shards", .int(options.shards)),
         ("pairing", .string(options.comparatorPairing.rawValue)), ("start_from_best_labelled", .bool(options.startFromBestLabelled)),
         ("node_widths", .string(options.nodeWidths.rawValue)), ("final_samples", .int(options.finalDeriveSamples)),
         ("search_queries", .int(options.searchQueries)),
         ("baseline_rule", .string(options.baselineRule.rawValue))]
    }

    public static func progressLine(_ event: JSON) -> String? {
        guard let kind = event["event"]?.stringValue else { return nil }
        func f(_ key: String, _ digits: Int = 4) -> String {
            event[key]?.doubleValue.map { String(format: "%.\(digits)f", $0) } ?? "-"
        }
        switch kind {
        case "comparator_epoch" where event["kendall_tau"] != nil:
            if let epoch = event["epoch"]?.intValue { return "pre-training epoch \(epoch): loss \(f("loss")), tau \(f("kendall_tau"))" }
            return "iteration \(event["iteration"]?.intValue ?? 0): comparator re-trained, tau \(f("kendall_tau")), pseudo pool \(event["pseudo_pool"]?.intValue ?? 0)"
        case "baseline":
            return "iteration \(event["iteration"]?.intValue ?? 0): best \(f("best_test_accuracy")) (rank \(event["best_rank"]?.intValue ?? 0))"
        case "query":
            let count = event["count"]?.intValue ?? 0
            return "iteration \(event["iteration"]?.intValue ?? 0): labelled \(count) cell\(count == 1 ? "" : "s") (\(event["queried"]?.intValue ?? 0) in the search so far)"
        case "search_started":
            return "search started: baseline \(f("baseline_test_accuracy")) (rank \(event["baseline_rank"]?.intValue ?? 0))"
        default:
            return nil
        }
    }
}

/// Appends JSON lines to a file; safe to call from any thread.
final class MetricsLog: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    /// Keeps the first `keepingSearchEvents` search events (and the worker events among them)
    /// and drops the rest: a resumed search re-emits everything after its checkpoint.
    init(url: URL, keepingSearchEvents keep: Int) throws {
        var kept = Data()
        if keep > 0, let existing = try? Data(contentsOf: url) {
            var count = 0
            for line in existing.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                guard count < keep else { break }
                let text = String(decoding: line, as: UTF8.self)
                guard let event = try? JSON.parse(text) else { break }
                if !(event["event"]?.stringValue ?? "").hasPrefix("worker_") { count += 1 }
                kept.append(line); kept.append(UInt8(ascii: "\n"))
            }
        }
        guard FileManager.default.createFile(atPath: url.path, contents: kept) else {
            throw CheckpointError(message: "cannot write \(url.path)")
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    func append(_ event: JSON) {
        lock.lock(); defer { lock.unlock() }
        handle.write(Data((event.serialized() + "\n").utf8))
    }
}
