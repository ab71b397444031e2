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

    public init(space: any SearchSpace, options: SearchOptions, output: String, runner: JobRunner,
                progress: @escaping (String) -> Void) throws {
        self.space = space
        self.options = options
        self.output = URL(fileURLWithPath: output)
        self.runner = runner
        self.progress = progress
        try FileManager.default.createDirectory(at: self.output, withIntermediateDirectories: true)
        metrics = try MetricsLog(url: self.output.appendingPathComponent("metrics.jsonl"))
    }

    /// For events that happen outside the search loop (workers joining or leaving); thread-safe.
    public func record(_ event: JSON) { metrics.append(event) }

    /// Runs the search to the end and writes `result.json`; returns what it wrote.
    @discardableResult
    public func run(workers: Int) throws -> JSON {
        let start = Date()
        let search = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { [metrics, progress] event in
            metrics.append(event)
            if let line = SearchSession.progressLine(event) { progress(line) }
        }
        try search.runToEnd()
        let result = resultJSON(search, workers: workers, seconds: Date().timeIntervalSince(start))
        try Data((result.serialized(pretty: true) + "\n").utf8).write(to: output.appendingPathComponent("result.json"), options: .atomic)
        return result
    }

    func resultJSON(_ search: Search, workers: Int, seconds: Double) -> JSON {
        let state = search.state
        let best = space.describe(row: state.bestRow)
        let labelled = search.bestLabelledRow
        return .object([
            ("space", .string(space.name)), ("seed", .int(Int(options.seed))), ("preset", .string(options.preset)),
            ("workers", .int(workers)), ("queries", .int(options.queries)), ("iterations", .int(options.iterations)),
            ("comparator", .object([("kendall_tau", .number(state.lastTau))])),
            ("best", .object([
                ("hash", .string(best.hash)), ("ops", .array(best.ops.map(JSON.string))),
                ("matrix", .array(best.matrix.map { .array($0.map(JSON.int)) })),
                ("test_accuracy", .number(Double(space.testAccuracy(ofRow: state.bestRow)))),
                ("rank", .int(space.rank(ofRow: state.bestRow))), ("percentile", .number(space.percentile(ofRow: state.bestRow))),
            ])),
            ("best_labelled", .object([
                ("hash", .string(space.describe(row: labelled).hash)),
                ("test_accuracy", .number(Double(space.testAccuracy(ofRow: labelled)))),
                ("rank", .int(space.rank(ofRow: labelled))),
            ])),
            ("label_note", .string("labels and reported accuracies are the table's test accuracy (NAS-Bench-101: run 0 of 3)")),
            ("wall_seconds", .number(seconds)),
            ("state_digest", .string(state.digest)),
            ("options", .object(optionFields)),
        ])
    }

    var optionFields: [(String, JSON)] {
        [("comparator_epochs", .int(options.comparatorEpochs)), ("iterations", .int(options.iterations)),
         ("samples_per_update", .int(options.samplesPerUpdate)), ("baseline_every", .int(options.baselineEvery)),
         ("explore_every", .int(options.exploreEvery)), ("shards", .int(options.shards)),
         ("pairing", .string(options.comparatorPairing.rawValue)), ("start_from_best_labelled", .bool(options.startFromBestLabelled))]
    }

    static func progressLine(_ event: JSON) -> String? {
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

    init(url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw RunnerError("cannot create \(url.path)")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: 0)
    }

    func append(_ event: JSON) {
        lock.lock(); defer { lock.unlock() }
        handle.write(Data((event.serialized() + "\n").utf8))
    }
}
