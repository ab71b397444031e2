import Engine

/// Everything that determines a search's result. Two runs with equal options on the same table
/// end with the same state digest, however many workers they had.
public struct SearchOptions: Codable, Sendable, Equatable {
    public var preset: String = "default"
    public var seed: UInt64 = 1
    /// Labelled cells the search may query (the original code's trainset_size).
    public var queries: Int = 423
    public var validationCells: Int = 100
    /// Of `queries`, the labels held back at the start and spent during the search on the
    /// unlabelled cells a baseline update ranks highest; the comparator re-trains on each new
    /// label at once. 0 is the paper: every label up front, on random cells.
    public var searchQueries: Int {
        get { searchQueryCount ?? 0 }
        set { searchQueryCount = newValue }
    }
    /// Optional so that a run.json written before this setting existed resumes as it ran.
    var searchQueryCount: Int? = 0
    /// Comparator epochs (labelled and pseudo-labelled pairs) right after a baseline update queried labels.
    public var epochsAfterQuery: Int = 20
    /// Extra controller samples a query ranks beside the baseline update's own cells.
    public var queryPool: Int = 100
    public var comparatorEpochs: Int = 1000
    public var comparatorBatch: Int = 256
    public var comparatorLearningRate: Float = 2e-4
    /// How a batch's labelled cells are paired: each with one shuffled partner (the original
    /// code), or every ordered pair of distinct cells (same embeddings, far more comparisons).
    public var comparatorPairing: Pairing = .shuffledPartner
    /// `channels` scales each op's embedding by the share of channels the space gives its node;
    /// `uniform` is the paper's NAC, which sees ops only. Measured in the README ("Results").
    public var nodeWidths: NodeWidths {
        get { comparatorNodeWidths ?? .uniform }
        set { comparatorNodeWidths = newValue }
    }
    /// Optional so that a run.json written before widths existed reads back as `uniform`, as it ran.
    var comparatorNodeWidths: NodeWidths? = .channels
    /// `top`: every ordered pair of the batch in which at least one cell is in the top fifth of
    /// the labelled cells — the search only ever asks the comparator about good cells.
    public enum Pairing: String, Codable, Sendable { case shuffledPartner = "partner", allPairs = "all", topPairs = "top" }
    public var iterations: Int = 10_000
    public var samplesPerUpdate: Int = 1
    public var controllerLearningRate: Float = 2e-4
    public var entropyCoefficient: Float = 5e-4
    /// Global-norm clip of the controller gradient; nil as in the original code.
    public var controllerGradientClip: Float? = nil
    /// Subtract the mean reward of an update's samples (only meaningful with several samples).
    public var meanRewardBaseline: Bool = false
    public var baselineEvery: Int = 500
    public var deriveSamples: Int = 10
    /// Samples the last baseline update derives: the final pick is the best of these and the
    /// curriculum's best, so a wider last look costs one scoring batch and finds more.
    public var finalDeriveSamples: Int {
        get { finalDeriveSampleCount ?? deriveSamples }
        set { finalDeriveSampleCount = newValue }
    }
    /// Optional so that a run.json written before this setting existed resumes as it ran.
    var finalDeriveSampleCount: Int? = 100
    public var exploreEvery: Int = 100
    /// Pseudo-labelled pairs per labelled pair in a comparator batch (the original pseudo_ratio).
    public var pseudoRatio: Double = 1.0
    /// Pairs added to the pseudo-label pool per exploration after the first.
    public var explorePairs: Int = 100
    /// Which derived cell becomes the baseline rewards are measured against: the curriculum's
    /// best so far (the paper's description), or the best of the new samples alone (what the
    /// original code does; measured worse here, see the README). The pick is the curriculum's best either way.
    public var baselineRule: BaselineRule = .curriculumBest
    public enum BaselineRule: String, Codable, Sendable { case bestNewSample = "new", curriculumBest = "best" }
    /// Start the curriculum from the best labelled cell instead of a uniform sample (the
    /// original code). Measured: a little better on NAS-Bench-101, worse on NAS-Bench-201 (README, "Results").
    public var startFromBestLabelled: Bool = false
    /// Comparator tau is measured every this many pre-training epochs (and at the end).
    public var evaluateEvery: Int = 100
    /// Jobs per batch: fixed by this setting, never by the number of workers.
    public var shards: Int = 8

    public init() {}

    /// The schedule of the paper and the original code.
    public static var paper: SearchOptions {
        var o = SearchOptions()
        o.preset = "paper"
        o.startFromBestLabelled = false
        return o
    }

    /// Labels a preset spends during the search out of `queries`: two fifths with the default
    /// preset, none with the paper's (measured in the README, "Results").
    public static func searchQueries(preset: String, queries: Int) -> Int {
        preset == "paper" ? 0 : min(queries * 2 / 5, max(queries - 2, 0))
    }

    public static func named(_ name: String) -> SearchOptions? {
        switch name {
        case "paper": return .paper
        case "default": return SearchOptions()
        default: return nil
        }
    }

    /// A problem with the options, or nil when they make a runnable search.
    public var problem: String? {
        if queries < 2 { return "--queries must be at least 2" }
        if searchQueries < 0 || searchQueries > queries - 2 { return "--search-queries must be in 0...\(queries - 2) (--queries minus 2)" }
        if validationCells < 2 { return "validation cells must be at least 2" }
        if comparatorBatch < 1 { return "comparator batch must be positive" }
        if comparatorEpochs < 0 || iterations < 0 { return "epochs and iterations must not be negative" }
        if samplesPerUpdate < 1 { return "--samples-per-update must be at least 1" }
        if baselineEvery < 1 || exploreEvery < 1 || evaluateEvery < 1 { return "--baseline-every, --explore-every and evaluation frequency must be positive" }
        if deriveSamples < 1 { return "derive samples must be positive" }
        if finalDeriveSamples < 1 || finalDeriveSamples > 1000 { return "--final-samples must be in 1...1000" }
        if shards < 1 || shards > 4096 { return "--shards must be in 1...4096" }
        if pseudoRatio < 0 { return "pseudo ratio must not be negative" }
        return nil
    }
}
