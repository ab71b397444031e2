import Foundation
import Engine
import Protocol
import Coordinator
import Worker

/// `ctnas search` (coordinator + worker threads in this process) and `ctnas coordinator`
/// (remote workers only) run the same search through the same ClusterRunner.
enum SearchCommands {
    static let scheduleOptions: [OptionSpec] = [] + DataLocation.Choice.options + [
        .value("--output", "DIR", "runs/search-seed<seed>", "folder for result.json and metrics.jsonl"),
        .value("--preset", "NAME", "default", "paper: the paper's schedule (1000 epochs, 10,000 iterations of one sample, baseline every 500, exploration every 100) with every label up front; default: the same schedule, spending 2/5 of the labels during the search"),
        .value("--seed", "N", "1", "seed of everything random"),
        .value("--queries", "N", "423 for nasbench101, 100 for nasbench201", "labelled cells the search may query"),
        .value("--search-queries", "N", "2/5 of --queries; paper: 0", "of --queries, labels held back and spent during the search on the cells most likely to beat the baseline; the pick is then the highest-labelled cell"),
        .value("--comparator-epochs", "E", "preset", "comparator pre-training epochs"),
        .value("--iterations", "N", "preset", "controller iterations"),
        .value("--samples-per-update", "N", "preset", "controller samples per policy update"),
        .value("--baseline-every", "N", "preset", "iterations between baseline updates"),
        .value("--explore-every", "N", "preset", "iterations between data explorations (pseudo-labels + comparator re-training)"),
        .value("--initial-baseline", "KIND", "uniform", "uniform: a uniform sample (original code); best-labelled: the best cell the search has a label for"),
        .value("--pairing", "KIND", "partner", "comparator training pairs: partner (each cell against a shuffled partner, original), all, or top (pairs with a top-fifth labelled cell)"),
        .value("--node-widths", "KIND", "channels", "channels: the comparator scales each op by its node's share of channels (NAS-Bench-101); uniform: ops only, the paper's NAC"),
        .value("--final-samples", "N", "100", "samples the last baseline update compares with the curriculum's best to make the final pick (the others derive 10)"),
        .value("--baseline-rule", "KIND", "best", "best: the curriculum's best becomes the baseline; new: the best of the new samples (original code)"),
        .value("--shards", "N", "8", "jobs per batch; fixed, so results do not depend on the number of workers"),
        .value("--checkpoint-every", "N", "500", "steps (epochs or iterations) between checkpoints; also at each phase boundary"),
        .value("--resume", "DIR", nil, "continue the run in DIR from its newest valid checkpoint (no other option needed)"),
        .flag("--quiet", "print only the final summary"),
        .value("--log-format", "FORMAT", "text", "progress on stderr: text (a live status line on a terminal, timestamped lines otherwise) or json (one event object per line)"),
    ]

    static let searchSpec = CommandSpec(name: "search", summary: "Run a CTNAS search with worker threads in this process (and remote workers with --listen).",
        options: scheduleOptions + [
            .value("--workers", "N", "number of cores", "worker threads in this process"),
            .value("--listen", "ENDPOINT", nil, "also accept remote workers, e.g. tcp://127.0.0.1:5555"),
        ] + Keys.serverOptions)

    static let coordinatorSpec = CommandSpec(name: "coordinator", summary: "Run a CTNAS search on remote workers (ctnas worker --connect ...).",
        options: scheduleOptions + [
            .value("--listen", "ENDPOINT", "tcp://127.0.0.1:5555", "where workers connect"),
            .value("--min-workers", "N", "1", "workers to wait for before starting"),
        ] + Keys.serverOptions)

    static let workerSpec = CommandSpec(name: "worker", summary: "Serve a coordinator: compute scoring and gradient jobs.", options: [
        .value("--connect", "ENDPOINT", nil, "coordinator endpoint, e.g. tcp://10.0.0.1:5555 (required)"),
        .value("--threads", "N", "1", "jobs computed at once"),
        .value("--id", "NAME", "<host>-<pid>", "worker name in the coordinator's log"),
    ] + Keys.workerOptions)

    static func searchOptions(_ args: ParsedArguments, cellCount: Int, defaultQueries: Int) throws -> SearchOptions {
        guard var o = SearchOptions.named(args.string("--preset")!) else {
            throw UsageError(message: "option --preset expects paper or default")
        }
        o.seed = UInt64(try args.int("--seed")!)
        o.queries = try args.given("--queries") ? args.int("--queries", in: 2...max(2, cellCount - 100))! : defaultQueries
        o.shards = try args.int("--shards", in: 1...4096)!
        func override(_ name: String, _ apply: (Int) -> Void, range: ClosedRange<Int> = 1...100_000_000) throws {
            if args.given(name) { apply(try args.int(name, in: range)!) }
        }
        try override("--comparator-epochs", { o.comparatorEpochs = $0 }, range: 0...100_000_000)
        try override("--iterations", { o.iterations = $0 }, range: 0...100_000_000)
        try override("--samples-per-update", { o.samplesPerUpdate = $0 })
        try override("--baseline-every", { o.baselineEvery = $0 })
        try override("--explore-every", { o.exploreEvery = $0 })
        try override("--final-samples", { o.finalDeriveSamples = $0 }, range: 1...1000)
        o.searchQueries = SearchOptions.searchQueries(preset: o.preset, queries: o.queries)
        try override("--search-queries", { o.searchQueries = $0 }, range: 0...100_000_000)
        if args.given("--initial-baseline") {
            switch args.string("--initial-baseline")! {
            case "uniform": o.startFromBestLabelled = false
            case "best-labelled": o.startFromBestLabelled = true
            default: throw UsageError(message: "option --initial-baseline expects uniform or best-labelled")
            }
        }
        guard let pairing = SearchOptions.Pairing(rawValue: args.string("--pairing")!) else {
            throw UsageError(message: "option --pairing expects partner, all or top")
        }
        o.comparatorPairing = pairing
        guard let widths = NodeWidths(rawValue: args.string("--node-widths")!) else {
            throw UsageError(message: "option --node-widths expects channels or uniform")
        }
        o.nodeWidths = widths
        guard let rule = SearchOptions.BaselineRule(rawValue: args.string("--baseline-rule")!) else {
            throw UsageError(message: "option --baseline-rule expects best or new")
        }
        o.baselineRule = rule
        if let problem = o.problem { throw UsageError(message: problem) }
        return o
    }

    static func runSearch(_ args: ParsedArguments) throws -> Int32 {
        try run(args, command: "search")
    }

    static func runCoordinator(_ args: ParsedArguments) throws -> Int32 {
        try run(args, command: "coordinator")
    }

    /// The run's manifest: read back with --resume, else made from the options and saved before any work.
    static func manifest(_ args: ParsedArguments, command: String) throws -> (RunManifest, output: String, resume: Bool) {
        if let dir = args.string("--resume") {
            let allowed: Set<String> = ["--resume", "--quiet", "--log-format"]
            if let extra = args.givenOptions.first(where: { !allowed.contains($0) }) {
                throw UsageError(message: "--resume takes its settings from DIR/run.json; drop \(extra)")
            }
            return (try RunManifest.load(from: URL(fileURLWithPath: dir)), dir, true)
        }
        let choice = try DataLocation.Choice(args).resolved
        let (space, _) = try choice.load()
        let options = try searchOptions(args, cellCount: space.cellCount, defaultQueries: choice.defaultQueries)
        let output = args.given("--output") ? args.string("--output")! : "runs/search-seed\(options.seed)"
        if FileManager.default.fileExists(atPath: output + "/" + RunManifest.fileName) {
            throw UsageError(message: "\(output) already holds a run; continue it with --resume \(output) or choose another --output")
        }
        var m = RunManifest(command: command, space: choice.space, data: choice.data!,
                            options: options, checkpointEvery: try args.int("--checkpoint-every", in: 1...100_000_000)!)
        m.dataset = choice.dataset
        m.validationData = choice.validationData
        if command == "search" {
            m.workers = try args.given("--workers") ? args.int("--workers", in: 0...1024)! : ProcessInfo.processInfo.activeProcessorCount
            m.listen = args.string("--listen")
            if m.workers == 0 && m.listen == nil { throw UsageError(message: "--workers 0 needs --listen for remote workers") }
        } else {
            m.listen = args.string("--listen")!
            m.minWorkers = try args.int("--min-workers", in: 1...1024)!
        }
        m.keys = args.string("--keys").map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        m.insecure = args.has("--insecure") ? true : nil
        // Refuse a bad listen address or unreadable keys before the run folder exists.
        _ = try Keys.serverSecurity(keys: m.keys, warn: { _ in })
        if let listen = m.listen { _ = try checkListenAddress(listen, secured: m.keys != nil, insecure: m.insecure ?? false) }
        try m.save(in: URL(fileURLWithPath: output))
        return (m, output, false)
    }

    static func run(_ args: ParsedArguments, command: String) throws -> Int32 {
        let quiet = args.has("--quiet")
        guard let format = args.string("--log-format"), ["text", "json"].contains(format) else {
            throw UsageError(message: "option --log-format expects text or json")
        }
        // Installed first, so a signal during start-up (loading, waiting for workers) stops cleanly.
        let announcer = Announcer()
        let stop = StopRequest.installed(say: { announcer.say($0) })
        let (manifest, output, resume) = try manifest(args, command: command)
        let (space, _) = try DataLocation.Choice(space: manifest.space, data: manifest.data, dataset: manifest.dataset,
                                                 validationData: manifest.validationData).load()
        let localWorkers = manifest.workers ?? 0
        let minWorkers = manifest.minWorkers ?? max(1, localWorkers)
        let display = ProgressDisplay.standardError(json: format == "json", quiet: quiet, epochs: manifest.options.comparatorEpochs,
                                                    iterations: manifest.options.iterations,
                                                    cell: { (Double(space.testAccuracy(ofRow: $0)), space.rank(ofRow: $0)) })
        defer { display.finish() }
        let sessionBox = SessionBox(display: display)
        let cluster = try ClusterSetup(space: space, listen: manifest.listen, localWorkers: localWorkers,
                                       keys: manifest.keys, insecure: manifest.insecure ?? false) { sessionBox.record($0) }
        defer { cluster.shutdown() }
        let runner = cluster.runner
        display.countWorkers { [runner] in runner.liveWorkerCount }
        let log: (String) -> Void = { display.message($0) }
        let session = try SearchSession(space: space, options: manifest.options, output: output,
                                        runner: CountingRunner(runner, counted: display.countPairs),
                                        checkpointEvery: manifest.checkpointEvery, resume: resume, progress: log)
        session.onEvent = display.event
        session.onStep = display.step
        sessionBox.session = session
        announcer.route { display.message($0, always: true) }
        if localWorkers == 0 { log("waiting for \(minWorkers) worker(s) on \(runner.endpoint)") }
        // Waits in short steps so SIGINT/SIGTERM can end a coordinator still waiting for workers.
        let waitUntil = Date().addingTimeInterval(localWorkers > 0 ? 60 : 86_400)
        while true {
            do {
                try runner.waitForWorkers(count: minWorkers, timeout: .seconds(1))
                break
            } catch {
                if stop.requested { return 0 }
                if Date() > waitUntil { throw error }
            }
        }
        log("searching \(space.name) with \(runner.liveWorkerCount) worker(s), preset \(manifest.options.preset), seed \(manifest.options.seed); writing \(output)")
        switch try session.run(workers: max(runner.liveWorkerCount, minWorkers), shouldStop: { stop.requested }) {
        case .interrupted:
            return 0
        case .finished(let result):
            display.finish()
            let best = result["best"]!
            let yardstick = Report.yardstick(of: result)!
            var line = String(format: "best cell %@: test accuracy %.4f, rank %d (%.4f%%); %@ %.4f (rank %d)",
                              best["hash"]!.stringValue!, best["test_accuracy"]!.doubleValue!, best["rank"]!.intValue!, best["percentile"]!.doubleValue!,
                              yardstick.name, yardstick.cell["test_accuracy"]!.doubleValue!, yardstick.cell["rank"]!.intValue!)
            if let curriculum = result["curriculum_best"] {
                line += String(format: "; the curriculum's own choice %.4f (rank %d)", curriculum["test_accuracy"]!.doubleValue!, curriculum["rank"]!.intValue!)
            }
            print(line + String(format: "; comparator tau %.4f; %.1f s", result["comparator"]!["kendall_tau"]!.doubleValue!, result["wall_seconds"]!.doubleValue!))
            return 0
        }
    }

    static func runWorker(_ args: ParsedArguments) throws -> Int32 {
        guard let endpoint = args.string("--connect") else { throw UsageError(message: "option --connect is required") }
        let threads = try args.int("--threads", in: 1...256)!
        let id = args.given("--id") ? args.string("--id")! : "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        // The coordinator's welcome names the search space; the executor reconfigures itself.
        let executor = JobExecutor(spaceNamed: "nasbench101")!
        let security = try Keys.workerSecurity(args)
        if let warning = Keys.connectWarning(endpoint, secured: security != nil) { Keys.printWarning(warning) }
        let node = WorkerNode(endpoint: endpoint, executor: executor, threads: threads, workerId: id, security: security) { event in
            // One line per job would flood a journal; connection changes are what operators need.
            if case .jobReceived = event { return }
            FileHandle.standardError.write(Data("worker \(id): \(event)\n".utf8))
        }
        let stop = StopRequest.installed { node.stop() }
        try node.run()
        _ = stop
        return 0
    }
}

/// Worker events arrive on the runner's I/O thread, possibly before the session exists.
private final class SessionBox: @unchecked Sendable {
    private let lock = NSLock()
    let display: ProgressDisplay
    init(display: ProgressDisplay) { self.display = display }
    private var _session: SearchSession?
    private var lastDropShown: ContinuousClock.Instant?
    private var dropsHidden = 0
    var session: SearchSession? {
        get { lock.lock(); defer { lock.unlock() }; return _session }
        set { lock.lock(); _session = newValue; lock.unlock() }
    }
    func record(_ event: ClusterEvent) {
        let fields: [(String, JSON)]
        switch event {
        case .workerJoined(let worker, let threads): fields = [("event", .string("worker_joined")), ("worker", .string(worker)), ("threads", .int(threads))]
        case .workerLost(let worker, let reason): fields = [("event", .string("worker_lost")), ("worker", .string(worker)), ("reason", .string(reason))]
        case .workerRefused(let address, let reason):
            fields = [("event", .string("worker_refused")), ("address", .string(address)), ("reason", .string(reason))]
        case .messageDropped(let from, let reason):
            // Shown (not kept in metrics) so a worker of another protocol version is noticed; a
            // peer sending garbage as fast as it can gets one line per 10 s, not a flood.
            let now = ContinuousClock.now
            let shown: Int? = lock.withLock {
                if let last = lastDropShown, now - last < .seconds(10) { dropsHidden += 1; return nil }
                defer { lastDropShown = now; dropsHidden = 0 }
                return dropsHidden
            }
            guard let hidden = shown else { return }
            display.event(.object([("event", .string("message_dropped")), ("from", .string(from)), ("reason", .string(reason)),
                                   ("not_shown_before", .int(hidden))]))
            return
        default: return
        }
        session?.record(.object(fields))
        display.event(.object(fields))
    }
}

/// SIGINT / SIGTERM ask for a clean stop: the coordinator checkpoints and stands its workers
/// down, a worker hands back what it holds. A second signal exits at once.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    var requested: Bool { lock.lock(); defer { lock.unlock() }; return flag }

    static func installed(onRequest: (@Sendable () -> Void)? = nil,
                          say: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data("\($0)\n".utf8)) }) -> StopRequest {
        let request = StopRequest()
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                request.lock.lock()
                let again = request.flag
                request.flag = true
                request.lock.unlock()
                if again { exit(130) }
                say("ctnas: stopping (signal \(signalNumber)); send it again to exit at once")
                onRequest?()
            }
            source.resume()
            request.sources.append(source)
        }
        return request
    }
}

/// Where stop messages go: plain stderr until the progress display exists.
final class Announcer: @unchecked Sendable {
    private let lock = NSLock()
    private var sink: (@Sendable (String) -> Void)?
    func route(_ sink: @escaping @Sendable (String) -> Void) { lock.lock(); self.sink = sink; lock.unlock() }
    func say(_ line: String) {
        lock.lock(); let sink = self.sink; lock.unlock()
        if let sink { sink(line) } else { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
    }
}
