import Engine
import Protocol

/// Computes jobs with the Engine. A result is a pure function of (weights version, payload):
/// any worker, any number of times, gives the same bytes.
public struct JobExecutor: Sendable {
    public static let engineVersion: UInt32 = 1

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The job names a weights version this executor does not hold (code 1): send weights and retry.
        case missingWeights(Weights.Kind, UInt64)
        /// The job cannot be computed as given (code 2): a coordinator bug or a hostile peer.
        case invalidJob(String)

        public var code: UInt16 {
            switch self { case .missingWeights: return 1; case .invalidJob: return 2 }
        }

        public var description: String {
            switch self {
            case .missingWeights(let kind, let version): return "missing \(kind) weights version \(version)"
            case .invalidJob(let why): return "invalid job: \(why)"
            }
        }
    }

    let comparatorConfiguration: ArchitectureComparator.Configuration
    let grammar: any DecisionGrammar
    public private(set) var comparator: (version: UInt64, model: ArchitectureComparator)?
    public private(set) var controller: (version: UInt64, model: Controller)?

    public init(comparator: ArchitectureComparator.Configuration, grammar: any DecisionGrammar) {
        comparatorConfiguration = comparator
        self.grammar = grammar
    }

    public init(space: any SearchSpace) {
        self.init(comparator: space.comparatorConfiguration, grammar: space.grammar)
        spaceName = space.name
    }

    /// For a worker told the space by its coordinator; nil for a space this build does not know.
    public init?(spaceNamed name: String) {
        switch name {
        case "nasbench101":
            self.init(comparator: .nasBench101, grammar: NASBench101Grammar())
        case _ where name.hasPrefix("nasbench201"):
            self.init(comparator: NASBench201Space.comparatorConfiguration, grammar: NASBench201Grammar())
        default:
            return nil
        }
        spaceName = name
    }

    /// The search space this executor computes for ("" when built from a bare configuration).
    public private(set) var spaceName = ""

    public func holds(_ kind: Weights.Kind, version: UInt64) -> Bool {
        switch kind {
        case .comparator: return comparator?.version == version
        case .controller: return controller?.version == version
        }
    }

    /// Holds the weights the coordinator sent last, per kind. A different version replaces the
    /// held one even when lower: a coordinator resumed from a checkpoint counts versions from there.
    public mutating func install(_ weights: Weights) throws(Failure) {
        switch weights.kind {
        case .comparator:
            if let held = comparator, held.version == weights.version { return }
            do {
                comparator = (weights.version, try ArchitectureComparator(configuration: comparatorConfiguration, parameters: weights.parameters))
            } catch { throw .invalidJob("comparator weights: \(error)") }
        case .controller:
            if let held = controller, held.version == weights.version { return }
            do {
                controller = (weights.version, try Controller(grammar: grammar, parameters: weights.parameters))
            } catch { throw .invalidJob("controller weights: \(error)") }
        }
    }

    public func execute(_ payload: JobPayload) -> Result<ResultPayload, Failure> {
        switch payload {
        case .score(let job):
            guard let model = comparatorModel(job.comparatorVersion) else { return .failure(.missingWeights(.comparator, job.comparatorVersion)) }
            if let problem = check(job.cells, job.pairs, model) { return .failure(.invalidJob(problem)) }
            let pairs = job.pairs.map { (Int($0.candidate), Int($0.reference)) }
            return .success(.scores(model.probabilities(cells: job.cells, pairs: pairs)))
        case .comparatorGradient(let job):
            guard let model = comparatorModel(job.comparatorVersion) else { return .failure(.missingWeights(.comparator, job.comparatorVersion)) }
            if let problem = check(job.cells, job.pairs, model) { return .failure(.invalidJob(problem)) }
            let pairs = job.pairs.map { (Int($0.candidate), Int($0.reference)) }
            var gradient = [Float](repeating: 0, count: model.parameters.count)
            let (loss, correct) = model.accumulateGradient(cells: job.cells, pairs: pairs, targets: job.targets, into: &gradient)
            return .success(.comparatorGradient(ComparatorGradientResult(
                gradient: gradient, pairCount: UInt32(pairs.count), lossSum: loss, correct: UInt32(correct))))
        case .policyGradient(let job):
            guard let held = controller, held.version == job.controllerVersion else {
                return .failure(.missingWeights(.controller, job.controllerVersion))
            }
            let model = held.model
            guard job.sequences.count == job.advantages.count else { return .failure(.invalidJob("sequences and advantages differ in count")) }
            guard job.sequences.allSatisfy(model.isValid) else { return .failure(.invalidJob("a sequence is not valid for this controller")) }
            var gradient = [Float](repeating: 0, count: model.parameters.count)
            var logSum = 0.0, entropySum = 0.0
            for (sequence, advantage) in zip(job.sequences, job.advantages) {
                let r = model.accumulatePolicyGradient(sequence: sequence, advantage: advantage,
                                                       entropyCoefficient: job.entropyCoefficient, into: &gradient)
                logSum += r.logProbability; entropySum += r.entropy
            }
            return .success(.policyGradient(PolicyGradientResult(
                gradient: gradient, sampleCount: UInt32(job.sequences.count), logProbabilitySum: logSum, entropySum: entropySum)))
        }
    }

    private func comparatorModel(_ version: UInt64) -> ArchitectureComparator? {
        guard let held = comparator, held.version == version else { return nil }
        return held.model
    }

    private func check(_ cells: [GraphEncoding], _ pairs: [CellPair], _ model: ArchitectureComparator) -> String? {
        guard cells.allSatisfy(model.accepts) else { return "a cell does not fit the comparator" }
        guard pairs.allSatisfy({ Int($0.candidate) < cells.count && Int($0.reference) < cells.count }) else {
            return "a pair indexes past the cells"
        }
        return nil
    }
}
