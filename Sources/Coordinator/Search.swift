import Engine
import Protocol

/// CTNAS as the paper and the original code run it: pre-train the comparator on labelled
/// pairs, then train the controller by REINFORCE with reward NAC(sample, baseline), moving the
/// baseline up a curriculum and re-training the comparator with pseudo-labelled pairs.
/// All work leaves as jobs through `runner`, cut into a fixed number of shards.
public final class Search {
    public let space: any SearchSpace
    public private(set) var state: SearchState
    let runner: JobRunner
    let emit: (JSON) -> Void
    /// The cells labelled before the search; `trainRows` adds those queried during it.
    let initialTrainRows: [Int]
    let validationRows: [Int]
    private var publishedComparator: UInt64 = 0
    private var publishedController: UInt64 = 0
    static let summaryEvery = 10

    public init(space: any SearchSpace, state: SearchState, runner: JobRunner, emit: @escaping (JSON) -> Void) {
        self.space = space
        self.state = state
        self.runner = runner
        self.emit = emit
        let split = space.split(seed: state.options.seed, train: state.options.queries, validation: state.options.validationCells)
        // The full split, then held-back labels off its end: validation cells stay the same
        // whichever share of the labels is spent during the search.
        initialTrainRows = Array(split.train.prefix(state.options.queries - state.options.searchQueries))
        validationRows = split.validation
    }

    /// Every cell the search has a label for so far.
    var trainRows: [Int] { initialTrainRows + state.queriedRows }

    public var options: SearchOptions { state.options }

    /// The label at the top fifth of the labelled cells.
    func topLabelThreshold(_ rows: [Int]) -> Float {
        let labels = rows.map { space.label(ofRow: $0) }.sorted(by: >)
        return labels[min(labels.count - 1, labels.count / 5)]
    }

    /// The best labelled cell: the yardstick a search should beat.
    public var bestLabelledRow: Int { highestLabelled(trainRows) }

    /// The best of the cells labelled before the search, at random: the yardstick of a search
    /// that spends labels during the search too.
    public var bestLabelledUpFrontRow: Int { highestLabelled(initialTrainRows) }

    /// Ties go to the earliest labelled.
    func highestLabelled(_ rows: [Int]) -> Int {
        var best = rows[0]
        for row in rows.dropFirst() where space.label(ofRow: row) > space.label(ofRow: best) { best = row }
        return best
    }

    /// What the search finally picks: the curriculum's best; with search queries, the
    /// highest-labelled cell once the curriculum's final choice is labelled too, as a search that
    /// has verified labels in hand reports the best it verified.
    public var pickRow: Int {
        options.searchQueries > 0 && state.phase == .finished ? bestLabelledRow : state.bestRow
    }

    /// Advances by one step (a pre-training epoch or a controller iteration). Returns false when finished.
    public func step() throws -> Bool {
        switch state.phase {
        case .pretraining:
            if state.epoch < options.comparatorEpochs {
                try pretrainingEpoch()
            } else {
                try startSearching()
            }
            return true
        case .searching:
            if state.iteration < options.iterations {
                try controllerIteration()
            } else {
                try updateBaseline(samples: options.finalDeriveSamples)
                if options.searchQueries > 0 && !trainRows.contains(state.bestRow) && !validationRows.contains(state.bestRow)
                    && state.queriedRows.count < options.searchQueries {
                    label([state.bestRow])
                }
                state.phase = .finished
                record(["event": .string("finished"), "best_row": .int(pickRow), "curriculum_best_row": .int(state.bestRow)] + describe("best", pickRow))
            }
            return state.phase != .finished
        case .finished:
            return false
        }
    }

    public func runToEnd() throws {
        while try step() {}
    }

    // MARK: Phases

    func pretrainingEpoch() throws {
        let (loss, accuracy) = try comparatorEpoch(pseudo: false)
        FaultInjection.reached("pretraining-epoch")
        state.epoch += 1
        var fields: [(String, JSON)] = [("event", .string("comparator_epoch")), ("phase", .string("pretraining")),
                                        ("epoch", .int(state.epoch)), ("loss", .number(loss)), ("accuracy", .number(accuracy))]
        if state.epoch % options.evaluateEvery == 0 || state.epoch == options.comparatorEpochs {
            state.lastTau = try kendallTau()
            fields.append(("kendall_tau", .number(state.lastTau)))
        }
        record(fields)
    }

    func startSearching() throws {
        if state.lastTau.isNaN { state.lastTau = try kendallTau() }
        let initial: Int
        if options.startFromBestLabelled {
            initial = bestLabelledRow
        } else {
            let sample = sampleController(uniform: true)
            initial = try row(for: sample.sequence)
        }
        state.baselineRow = initial
        state.bestRow = initial
        state.phase = .searching
        record(["event": .string("search_started"), "kendall_tau": .number(state.lastTau)] + describe("baseline", initial))
    }

    func controllerIteration() throws {
        let i = state.iteration
        if options.pseudoRatio > 0 && i % options.exploreEvery == 0 {
            try explore()
        }
        try policyUpdate()
        FaultInjection.reached("iteration")
        if i % options.baselineEvery == 0 {
            try updateBaseline(samples: options.deriveSamples)
        }
        state.iteration += 1
    }

    // MARK: Comparator

    /// One pass over the labelled cells in batches; each cell is paired with a shuffled partner
    /// from its batch, and with pseudo-labelled pairs mixed in once the pool exists.
    func comparatorEpoch(pseudo: Bool) throws -> (loss: Double, accuracy: Double) {
        let rows = trainRows
        let order = state.generator.permutation(rows.count).map { rows[$0] }
        let threshold = options.comparatorPairing == .topPairs ? topLabelThreshold(rows) : 0
        var lossSum = 0.0, correct = 0, pairCount = 0
        var start = 0
        while start < order.count {
            let batch = Array(order[start..<min(start + options.comparatorBatch, order.count)])
            start += batch.count
            var pairs = [(Int, Int)](), targets = [Float]()
            func add(_ row: Int, _ other: Int) {
                pairs.append((row, other))
                targets.append(space.label(ofRow: row) > space.label(ofRow: other) ? 1 : 0)
            }
            switch options.comparatorPairing {
            case .shuffledPartner:
                let partner = state.generator.permutation(batch.count)
                for (k, row) in batch.enumerated() { add(row, batch[partner[k]]) }
            case .allPairs:
                for row in batch { for other in batch where other != row { add(row, other) } }
            case .topPairs:
                for row in batch {
                    for other in batch where other != row && max(space.label(ofRow: row), space.label(ofRow: other)) >= threshold {
                        add(row, other)
                    }
                }
            }
            if pseudo && !state.pseudoPool.isEmpty {
                let wanted = min(Int(Double(batch.count) * options.pseudoRatio), state.pseudoPool.count)
                for index in sampleWithoutReplacement(wanted, from: state.pseudoPool.count) {
                    let p = state.pseudoPool[index]
                    pairs.append((p.first, p.second))
                    targets.append(p.label)
                }
            }
            let result = try comparatorGradientStep(pairs: pairs, targets: targets)
            lossSum += result.loss; correct += result.correct; pairCount += pairs.count
        }
        return (lossSum / Double(max(pairCount, 1)), Double(correct) / Double(max(pairCount, 1)))
    }

    func comparatorGradientStep(pairs: [(Int, Int)], targets: [Float]) throws -> (loss: Double, correct: Int) {
        try publishComparator()
        let jobs = shardRanges(pairs.count).map { range -> JobPayload in
            let (cells, indexed) = cellsAndPairs(Array(pairs[range]))
            return .comparatorGradient(ComparatorGradientJob(comparatorVersion: state.comparatorVersion, cells: cells,
                                                             pairs: indexed, targets: Array(targets[range])))
        }
        var sum = [Double](repeating: 0, count: state.comparator.parameters.count)
        var loss = 0.0, correct = 0
        for result in try runner.run(jobs) {
            guard case .comparatorGradient(let r) = result, r.gradient.count == sum.count else {
                throw RunnerError("a comparator-gradient job returned the wrong kind of result")
            }
            for k in 0..<sum.count { sum[k] += Double(r.gradient[k]) }
            loss += r.lossSum; correct += Int(r.correct)
        }
        let scale = 1 / Double(pairs.count)
        let gradient = sum.map { Float($0 * scale) }
        var parameters = state.comparator.parameters
        state.comparatorOptimizer.update(&parameters, gradient: gradient)
        state.comparator.parameters = parameters
        state.comparatorVersion += 1
        return (loss, correct)
    }

    /// CTNAS's tau: sign agreement of P(i beats j) − 0.5 with the label order, over all validation pairs.
    func kendallTau() throws -> Double {
        var pairs = [(Int, Int)]()
        for i in 0..<(validationRows.count - 1) {
            for j in (i + 1)..<validationRows.count { pairs.append((validationRows[i], validationRows[j])) }
        }
        let p = try score(pairs)
        // Pairs were listed row by row, so pair (i, j) sits after all pairs of rows before i.
        let n = validationRows.count
        return KendallTau.pairwise(probabilities: { i, j in p[i * n - i * (i + 1) / 2 + (j - i - 1)] },
                                   accuracies: validationRows.map { space.label(ofRow: $0) })
    }

    /// P(first beats second) for each pair of table rows.
    func score(_ pairs: [(Int, Int)]) throws -> [Float] {
        try publishComparator()
        let jobs = shardRanges(pairs.count).map { range -> JobPayload in
            let (cells, indexed) = cellsAndPairs(Array(pairs[range]))
            return .score(ScoreJob(comparatorVersion: state.comparatorVersion, cells: cells, pairs: indexed))
        }
        var scores = [Float]()
        scores.reserveCapacity(pairs.count)
        for (job, result) in zip(jobs, try runner.run(jobs)) {
            guard case .scores(let s) = result, case .score(let j) = job, s.count == j.pairs.count else {
                throw RunnerError("a score job returned the wrong kind or number of results")
            }
            scores += s
        }
        return scores
    }

    // MARK: Controller

    func policyUpdate() throws {
        var sequences = [[UInt16]](), rows = [Int]()
        var logProbability = 0.0, entropy = 0.0
        for _ in 0..<options.samplesPerUpdate {
            let sample = sampleController()
            sequences.append(sample.sequence)
            rows.append(try row(for: sample.sequence))
            logProbability += sample.logProbability; entropy += sample.entropy
        }
        let rewards = try score(rows.map { ($0, state.baselineRow) })
        var advantages = rewards
        if options.meanRewardBaseline && rewards.count > 1 {
            let mean = rewards.reduce(0, +) / Float(rewards.count)
            advantages = rewards.map { $0 - mean }
        }
        try publishController()
        let jobs = shardRanges(sequences.count).map { range -> JobPayload in
            .policyGradient(PolicyGradientJob(controllerVersion: state.controllerVersion, entropyCoefficient: options.entropyCoefficient,
                                              sequences: Array(sequences[range]), advantages: Array(advantages[range])))
        }
        var sum = [Double](repeating: 0, count: state.controller.parameters.count)
        for result in try runner.run(jobs) {
            guard case .policyGradient(let r) = result, r.gradient.count == sum.count else {
                throw RunnerError("a policy-gradient job returned the wrong kind of result")
            }
            for k in 0..<sum.count { sum[k] += Double(r.gradient[k]) }
        }
        let scale = 1 / Double(sequences.count)
        var gradient = sum.map { Float($0 * scale) }
        if let clip = options.controllerGradientClip { clipGradientNorm(&gradient, maxNorm: clip) }
        var parameters = state.controller.parameters
        state.controllerOptimizer.update(&parameters, gradient: gradient)
        state.controller.parameters = parameters
        state.controllerVersion += 1

        state.summaryCount += sequences.count
        state.summaryReward += Double(rewards.reduce(0, +))
        state.summaryEntropy += entropy
        state.summaryLogProbability += logProbability
        if (state.iteration + 1) % Self.summaryEvery == 0 || state.iteration + 1 == options.iterations {
            let n = Double(max(state.summaryCount, 1))
            record(["event": .string("policy"), "iteration": .int(state.iteration + 1),
                    "reward": .number(state.summaryReward / n), "entropy": .number(state.summaryEntropy / n),
                    "log_probability": .number(state.summaryLogProbability / n)])
            state.summaryCount = 0
            state.summaryReward = 0; state.summaryEntropy = 0; state.summaryLogProbability = 0
        }
    }

    /// Derive new samples, compare them and the current best pairwise, and keep the one with
    /// the highest summed win probability as both the best and the new baseline.
    func updateBaseline(samples: Int) throws {
        var rows = [Int]()
        for _ in 0..<samples {
            rows.append(try row(for: sampleController().sequence))
        }
        rows.append(state.bestRow)
        var pairs = [(Int, Int)]()
        for i in rows.indices { for j in rows.indices where i != j { pairs.append((rows[i], rows[j])) } }
        let p = try score(pairs)
        FaultInjection.reached("baseline-update")
        var wins = [Double](repeating: 0, count: rows.count)
        var k = 0
        for i in rows.indices { for j in rows.indices where i != j { wins[i] += Double(p[k]); k += 1 } }
        // Ties keep the earliest, as torch.max does.
        var chosen = 0
        for i in rows.indices where wins[i] > wins[chosen] { chosen = i }
        state.bestRow = rows[chosen]
        switch options.baselineRule {
        case .curriculumBest:
            state.baselineRow = rows[chosen]
        case .bestNewSample:
            // The original code's separate N × N comparison of the new samples alone.
            let n = samples
            var newWins = [Double](repeating: 0, count: n)
            k = 0
            for i in rows.indices {
                for j in rows.indices where i != j {
                    if i < n && j < n { newWins[i] += Double(p[k]) }
                    k += 1
                }
            }
            var best = 0
            for i in 0..<n where newWins[i] > newWins[best] { best = i }
            state.baselineRow = rows[best]
        }
        record(["event": .string("baseline"), "iteration": .int(state.iteration)] + describe("best", state.bestRow)
               + describe("baseline", state.baselineRow))
        // The final update (after the last iteration) labels only its choice, in `step`.
        if state.iteration < options.iterations {
            try query(candidates: rows)
        }
    }

    /// Spends this update's share of the held-back labels on the unlabelled cells most likely
    /// to beat the baseline, out of the update's cells and `queryPool` more samples, then
    /// re-trains the comparator so the next rewards already see them.
    func query(candidates: [Int]) throws {
        // One label stays for the curriculum's final choice.
        let budget = options.searchQueries - 1 - state.queriedRows.count
        guard budget > 0 else { return }
        var pool = candidates
        for _ in 0..<options.queryPool { pool.append(try row(for: sampleController().sequence)) }
        // Validation cells stay unlabelled for the search, so tau keeps measuring unseen cells.
        var seen = Set(trainRows + validationRows)
        pool = pool.filter { seen.insert($0).inserted }
        let p = try score(pool.map { ($0, state.baselineRow) })
        let ranked = pool.indices.sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }.map { pool[$0] }
        let updatesLeft = (options.iterations - 1) / options.baselineEvery - state.iteration / options.baselineEvery + 1
        let share = (budget + updatesLeft - 1) / max(updatesLeft, 1)
        let chosen = Array(ranked.prefix(share))
        guard !chosen.isEmpty else { return }
        label(chosen)
        guard options.epochsAfterQuery > 0 else { return }
        var result = (loss: 0.0, accuracy: 0.0)
        for _ in 0..<options.epochsAfterQuery { result = try comparatorEpoch(pseudo: true) }
        state.lastTau = try kendallTau()
        record(["event": .string("comparator_epoch"), "phase": .string("query"), "iteration": .int(state.iteration),
                "loss": .number(result.loss), "accuracy": .number(result.accuracy), "kendall_tau": .number(state.lastTau),
                "pseudo_pool": .int(state.pseudoPool.count)])
    }

    func label(_ rows: [Int]) {
        state.queriedRows += rows
        record(["event": .string("query"), "iteration": .int(state.iteration), "count": .int(rows.count), "rows": .array(rows.map { .int($0) }),
                "labels": .array(rows.map { .number(Double(space.label(ofRow: $0))) }), "queried": .int(state.queriedRows.count)])
    }

    /// Data exploration: pair sampled cells with shuffled partners, label the pairs the
    /// comparator is most confident about, add them to the pool, and re-train one epoch.
    func explore() throws {
        let added = state.pseudoPool.isEmpty ? Int(options.pseudoRatio * Double(options.comparatorBatch)) : options.explorePairs
        if added > 0 {
            var rows = [Int]()
            for _ in 0..<(2 * added) {
                rows.append(try row(for: sampleController().sequence))
            }
            let partner = state.generator.permutation(rows.count)
            let pairs = rows.indices.map { (rows[$0], rows[partner[$0]]) }
            let p = try score(pairs)
            let confident = p.indices.sorted { abs(p[$0] - 0.5) != abs(p[$1] - 0.5) ? abs(p[$0] - 0.5) > abs(p[$1] - 0.5) : $0 < $1 }
            for index in confident.prefix(added) {
                state.pseudoPool.append(PseudoPair(first: pairs[index].0, second: pairs[index].1, label: p[index] > 0.5 ? 1 : 0))
            }
        }
        let (loss, accuracy) = try comparatorEpoch(pseudo: true)
        state.lastTau = try kendallTau()
        record(["event": .string("comparator_epoch"), "phase": .string("search"), "iteration": .int(state.iteration),
                "loss": .number(loss), "accuracy": .number(accuracy), "kendall_tau": .number(state.lastTau),
                "pseudo_pool": .int(state.pseudoPool.count)])
    }

    // MARK: Helpers

    /// Draws from the controller with the search's generator (a local copy: the state is one
    /// stored property, so the controller and generator cannot both be accessed in place).
    func sampleController(uniform: Bool = false) -> Controller.Sample {
        var generator = state.generator
        defer { state.generator = generator }
        return state.controller.sample(generator: &generator, uniform: uniform)
    }

    func row(for sequence: [UInt16]) throws -> Int {
        guard let row = space.row(forSequence: sequence) else {
            throw RunnerError("the controller produced a cell that is not in the \(space.name) table")
        }
        return row
    }

    /// Splits `count` items into at most `options.shards` contiguous ranges (never empty ones).
    func shardRanges(_ count: Int) -> [Range<Int>] {
        let shards = min(options.shards, max(count, 1))
        return (0..<shards).map { k in (k * count / shards)..<((k + 1) * count / shards) }.filter { !$0.isEmpty || count == 0 }
    }

    /// The distinct cells of `pairs` (first appearance order) and the pairs as indices into them.
    func cellsAndPairs(_ pairs: [(Int, Int)]) -> ([GraphEncoding], [CellPair]) {
        var index = [Int: UInt32]()
        var cells = [GraphEncoding]()
        func slot(_ row: Int) -> UInt32 {
            if let k = index[row] { return k }
            let k = UInt32(cells.count)
            index[row] = k
            cells.append(space.encoding(ofRow: row, widths: options.nodeWidths))
            return k
        }
        let indexed = pairs.map { CellPair(candidate: slot($0.0), reference: slot($0.1)) }
        return (cells, indexed)
    }

    func sampleWithoutReplacement(_ k: Int, from n: Int) -> [Int] {
        var pool = Array(0..<n)
        for i in 0..<k {
            let j = i + state.generator.nextInt(below: n - i)
            pool.swapAt(i, j)
        }
        return Array(pool[0..<k])
    }

    func publishComparator() throws {
        guard publishedComparator != state.comparatorVersion else { return }
        try runner.publish(Weights(kind: .comparator, version: state.comparatorVersion, parameters: state.comparator.parameters))
        publishedComparator = state.comparatorVersion
    }

    func publishController() throws {
        guard publishedController != state.controllerVersion else { return }
        try runner.publish(Weights(kind: .controller, version: state.controllerVersion, parameters: state.controller.parameters))
        publishedController = state.controllerVersion
    }

    func describe(_ prefix: String, _ row: Int) -> [(String, JSON)] {
        [(prefix + "_hash", .string(space.describe(row: row).hash)),
         (prefix + "_test_accuracy", .number(Double(space.testAccuracy(ofRow: row)))),
         (prefix + "_rank", .int(space.rank(ofRow: row)))]
    }

    func record(_ fields: [(String, JSON)]) {
        state.eventCount += 1
        emit(.object(fields))
    }

    func record(_ fields: KeyValuePairs<String, JSON>) {
        record(fields.map { ($0.key, $0.value) })
    }
}

func + (a: KeyValuePairs<String, JSON>, b: [(String, JSON)]) -> [(String, JSON)] {
    a.map { ($0.key, $0.value) } + b
}
