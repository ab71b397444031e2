import Engine

/// A pair of sampled cells labelled by the comparator itself (data exploration).
public struct PseudoPair: Sendable, Equatable {
    public var first: Int
    public var second: Int
    public var label: Float
}

public enum SearchPhase: String, Sendable, Codable {
    case pretraining, searching, finished
}

/// The whole state of a search between two steps: what a checkpoint holds and what the state
/// digest covers. Everything random comes from `generator`.
public struct SearchState: Sendable {
    public var options: SearchOptions
    public var phase: SearchPhase = .pretraining
    /// Comparator epochs completed in pre-training.
    public var epoch = 0
    /// Controller iterations completed.
    public var iteration = 0
    public var generator: SeededGenerator
    public var comparator: ArchitectureComparator
    public var comparatorOptimizer: Adam
    public var comparatorVersion: UInt64 = 1
    public var controller: Controller
    public var controllerOptimizer: Adam
    public var controllerVersion: UInt64 = 1
    /// The curriculum: the cell rewards are measured against, and the best found so far.
    public var baselineRow: Int = -1
    public var bestRow: Int = -1
    public var pseudoPool: [PseudoPair] = []
    /// Cells labelled during the search (`SearchOptions.searchQueries`), in the order queried.
    public var queriedRows: [Int] = []
    public var lastTau: Double = .nan
    /// Number of metrics events emitted, so a resumed run continues the file exactly.
    public var eventCount = 0
    /// Running sums of the policy summary that is emitted every few iterations.
    public var summaryCount = 0
    public var summaryReward = 0.0, summaryEntropy = 0.0, summaryLogProbability = 0.0

    public init(space: any SearchSpace, options: SearchOptions) {
        self.options = options
        var g = SeededGenerator(seed: options.seed)
        comparator = ArchitectureComparator(configuration: space.comparatorConfiguration, generator: &g)
        controller = Controller(grammar: space.grammar, generator: &g)
        comparatorOptimizer = Adam(parameterCount: comparator.parameters.count, settings: .init(
            learningRate: options.comparatorLearningRate, beta1: 0.5, beta2: 0.999, weightDecay: 5e-4))
        controllerOptimizer = Adam(parameterCount: controller.parameters.count, settings: .init(
            learningRate: options.controllerLearningRate, beta1: 0.5, beta2: 0.999, weightDecay: 5e-4))
        generator = g
    }

    /// SHA-256 over the final weights and the curriculum, canonical little-endian bytes.
    public var digest: String {
        var hasher = SHA256Hasher()
        func floats(_ values: [Float]) {
            var bytes = [UInt8](); bytes.reserveCapacity(values.count * 4)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            hasher.update(bytes)
        }
        func word(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { hasher.update(Array($0)) } }
        floats(controller.parameters)
        floats(comparator.parameters)
        word(Int64(baselineRow)); word(Int64(bestRow)); word(Int64(iteration)); word(Int64(epoch))
        word(Int64(pseudoPool.count))
        for p in pseudoPool { word(Int64(p.first)); word(Int64(p.second)); floats([p.label]) }
        // Only when present, so digests of searches without search-time queries are unchanged.
        if !queriedRows.isEmpty {
            word(Int64(queriedRows.count))
            for row in queriedRows { word(Int64(row)) }
        }
        return Digest.hex(hasher.finalize())
    }
}
