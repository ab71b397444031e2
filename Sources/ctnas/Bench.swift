import Foundation
import Engine

/// Speed figures beside the PyTorch reference (../shared/reference: 2-core AMD EPYC, one thread).
enum Bench {
    static let spec = CommandSpec(name: "bench", summary: "Measure speed beside the PyTorch reference figures.", options: [
        .value("--data", "PATH", DataLocation.defaultNASBench101, "benchmark table (cells to time, and load time)"),
        .value("--repeats", "N", "30", "repetitions of each timed step"),
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
        let rows = Array(g.permutation(space.cellCount).prefix(4097))
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

        if args.has("--json") {
            print(jsonLine(figures.map { ($0.key, $0.value) } + [("threads", 1)]))
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

    /// Mean seconds per call after two warm-up calls.
    static func time(_ repeats: Int, _ body: () -> Void) -> Double {
        body(); body()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<repeats { body() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(repeats)
    }
}
