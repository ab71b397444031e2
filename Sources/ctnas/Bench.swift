import Foundation
import Engine
import Protocol
import Coordinator

/// Speed figures beside the PyTorch reference (../shared/reference: 2-core AMD EPYC, one thread).
enum Bench {
    static let spec = CommandSpec(name: "bench", summary: "Measure speed beside the PyTorch reference figures.", options: [
        .value("--data", "PATH", DataLocation.defaultNASBench101, "benchmark table (cells to time, and load time)"),
        .value("--repeats", "N", "30", "repetitions of each timed step"),
        .value("--scaling-workers", "W", "number of cores", "worker processes for the scaling figure (0 skips it)"),
        .flag("--json", "print one JSON object"),
    ])

    struct Figure {
        let key: String
        let label: String
        let value: Double
        let unit: String
        let reference: Double?
        let target: String?
    }

    static func run(_ args: ParsedArguments) throws -> Int32 {
        let repeats = try args.int("--repeats", in: 1...100_000)!
        let (space, loadSeconds) = try DataLocation.loadSpace(args.string("--data"))
        var g = SeededGenerator(seed: 2024)
        var figures = [Figure(key: "table_load_seconds", label: "load the full table", value: loadSeconds, unit: "s",
                              reference: 28, target: "≤ 5 s")]

        // A training batch as training forms it: 256 labelled cells, each against a shuffled partner.
        let rows = Array(g.permutation(space.cellCount).prefix(40_000))
        let batch = rows.prefix(256).map { space.encoding(ofRow: $0) }
        let partner = g.permutation(256)
        let trainPairs = (0..<256).map { ($0, partner[$0]) }
        let targets = (0..<256).map { _ in Float(g.nextInt(below: 2)) }
        var comparator = ArchitectureComparator(generator: &g)
        var adam = Adam(parameterCount: comparator.parameters.count, settings: .init(learningRate: 2e-4, beta1: 0.5, weightDecay: 5e-4))
        func trainStep(_ cells: [GraphEncoding], _ pairs: [(Int, Int)]) {
            var gradient = [Float](repeating: 0, count: comparator.parameters.count)
            _ = comparator.accumulateGradient(cells: cells, pairs: pairs, targets: targets, into: &gradient)
            for k in gradient.indices { gradient[k] /= Float(pairs.count) }
            adam.update(&comparator.parameters, gradient: gradient)
        }
        let step = time(repeats) { trainStep(batch, trainPairs) }
        figures.append(Figure(key: "comparator_train_step_ms", label: "comparator training step, 256 pairs", value: step * 1e3,
                              unit: "ms", reference: 38.3, target: "≤ 15 ms"))
        // The reference script's shape: two independent batches, 512 distinct cells.
        let distinct = rows.prefix(512).map { space.encoding(ofRow: $0) }
        let distinctPairs = (0..<256).map { ($0, 256 + $0) }
        let step512 = time(repeats) { trainStep(distinct, distinctPairs) }
        figures.append(Figure(key: "comparator_train_step_512_distinct_ms", label: "  same, 512 distinct cells (reference shape)",
                              value: step512 * 1e3, unit: "ms", reference: 38.3, target: nil))

        // Candidate-vs-baseline scoring: the baseline is one more cell of the job.
        let candidates = rows.prefix(4097).map { space.encoding(ofRow: $0) }
        let scorePairs = (0..<4096).map { ($0, 4096) }
        let scoring = time(max(3, repeats / 5)) { _ = comparator.probabilities(cells: candidates, pairs: scorePairs) }
        figures.append(Figure(key: "pairs_per_second", label: "candidate-vs-baseline pairs scored", value: 4096 / scoring,
                              unit: "pairs/s", reference: 9650, target: "≥ 40,000"))
        let single = [candidates[0], candidates[1]]
        let onePair = time(repeats * 20) { _ = comparator.probabilities(cells: single, pairs: [(0, 1)]) }
        figures.append(Figure(key: "single_pair_us", label: "one pair, batch of 1", value: onePair * 1e6, unit: "µs",
                              reference: 909, target: nil))

        var controller = Controller(grammar: space.grammar, generator: &g)
        var controllerAdam = Adam(parameterCount: controller.parameters.count, settings: .init(learningRate: 2e-4, beta1: 0.5, weightDecay: 5e-4))
        let controllerStep = time(repeats * 10) {
            let sample = controller.sample(generator: &g)
            var gradient = [Float](repeating: 0, count: controller.parameters.count)
            _ = controller.accumulatePolicyGradient(sequence: sample.sequence, advantage: 0.5, entropyCoefficient: 5e-4, into: &gradient)
            controllerAdam.update(&controller.parameters, gradient: gradient)
        }
        figures.append(Figure(key: "controller_step_ms", label: "controller sample + REINFORCE update", value: controllerStep * 1e3,
                              unit: "ms", reference: 27.4, target: "≤ 1 ms"))

        let cores = ProcessInfo.processInfo.activeProcessorCount
        let scalingWorkers = try args.given("--scaling-workers") ? args.int("--scaling-workers", in: 0...256)! : cores
        if scalingWorkers > 0 {
            let one = try clusterPairsPerSecond(workers: 1, space: space, comparator: comparator, rows: rows)
            let many = try clusterPairsPerSecond(workers: scalingWorkers, space: space, comparator: comparator, rows: rows)
            figures.append(Figure(key: "cluster_pairs_per_second_1_worker", label: "scoring through the cluster, 1 worker process",
                                  value: one, unit: "pairs/s", reference: nil, target: nil))
            figures.append(Figure(key: "cluster_pairs_per_second_\(scalingWorkers)_workers", label: "  \(scalingWorkers) worker processes",
                                  value: many, unit: "pairs/s", reference: 18270, target: nil))
            figures.append(Figure(key: "cells_per_second_per_worker", label: "  cells/s per worker (\(scalingWorkers) workers)",
                                  value: many / Double(scalingWorkers), unit: "cells/s", reference: nil, target: nil))
            figures.append(Figure(key: "scaling_efficiency", label: "  speed-up ÷ workers", value: many / one / Double(scalingWorkers),
                                  unit: "", reference: nil, target: "≥ 0.85"))
        }

        if args.has("--json") {
            print(JSON.object(figures.map { ($0.key, .number($0.value)) } + [("threads", .int(1))]).serialized())
        } else {
            print("ctnas bench — one thread; reference: PyTorch 2.15, one thread, same shapes (../shared/reference)")
            for f in figures {
                let value = f.value >= 100 ? String(format: "%.0f", f.value) : String(format: "%.3g", f.value)
                var line = f.label.padding(toLength: 46, withPad: " ", startingAt: 0) + "\(value) \(f.unit)".padding(toLength: 18, withPad: " ", startingAt: 0)
                if let r = f.reference { line += "reference \(r >= 100 ? String(format: "%.0f", r) : String(r)) \(f.unit)" }
                if let t = f.target { line += "   target \(t)" }
                print(line)
            }
        }
        return 0
    }

    /// Candidate-vs-baseline pairs per second through ClusterRunner and `workers` separate
    /// `ctnas worker` processes on loopback: the path a real search takes, wire format included.
    static func clusterPairsPerSecond(workers: Int, space: NASBench101Space, comparator: ArchitectureComparator, rows: [Int]) throws -> Double {
        let runner = try ClusterRunner(bind: "tcp://127.0.0.1:*", configuration: .init(engineVersion: 1))
        defer { runner.shutdown() }
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let processes = try (0..<workers).map { k -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["worker", "--connect", runner.endpoint, "--id", "bench-\(k)"]
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        defer { for p in processes where p.isRunning { p.terminate(); p.waitUntilExit() } }
        try runner.waitForWorkers(count: workers, timeout: .seconds(30))
        try runner.publish(Weights(kind: .comparator, version: 1, parameters: comparator.parameters))
        let perJob = 2048
        let jobs = (0..<(16 * workers)).map { j -> JobPayload in
            let cells = [space.encoding(ofRow: rows[0])] + (0..<perJob).map { space.encoding(ofRow: rows[(j * perJob + $0) % rows.count]) }
            return .score(ScoreJob(comparatorVersion: 1, cells: cells, pairs: (1...perJob).map { CellPair(candidate: UInt32($0), reference: 0) }))
        }
        _ = try runner.run(Array(jobs.prefix(workers)))  // every worker has the weights and is warm
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try runner.run(jobs)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(jobs.count * perJob) / seconds
    }

    /// Mean seconds per call after two warm-up calls.
    static func time(_ repeats: Int, _ body: () -> Void) -> Double {
        body(); body()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<repeats { body() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(repeats)
    }
}
