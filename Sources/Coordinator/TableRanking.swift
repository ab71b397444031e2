import Engine
import Protocol

/// Scores every cell of a table against one reference cell on the cluster: the comparator's
/// view of the whole space, next to the truth.
public struct TableRanking {
    public struct Entry: Sendable {
        public let row: Int
        public let probability: Float
    }

    public let probabilities: [Float]
    /// Kendall's tau-b between P(cell beats reference) and test accuracy over the whole table.
    public let kendallTau: Double
    public let seconds: Double

    /// `cellsPerJob` cells go in each scoring job, the reference cell once more in each.
    public init(space: any SearchSpace, comparator: ArchitectureComparator, version: UInt64, reference: Int,
                nodeWidths: NodeWidths, runner: JobRunner, cellsPerJob: Int = 4096) throws {
        let clock = ContinuousClock()
        let start = clock.now
        try runner.publish(Weights(kind: .comparator, version: version, parameters: comparator.parameters))
        var probabilities = [Float]()
        probabilities.reserveCapacity(space.cellCount)
        let referenceCell = space.encoding(ofRow: reference, widths: nodeWidths)
        var first = 0
        let batchJobs = 64
        while first < space.cellCount {
            var jobs = [JobPayload]()
            while jobs.count < batchJobs && first < space.cellCount {
                let last = min(first + cellsPerJob, space.cellCount)
                let cells = [referenceCell] + (first..<last).map { space.encoding(ofRow: $0, widths: nodeWidths) }
                let pairs = (1..<cells.count).map { CellPair(candidate: UInt32($0), reference: 0) }
                jobs.append(.score(ScoreJob(comparatorVersion: version, cells: cells, pairs: pairs)))
                first = last
            }
            for result in try runner.run(jobs) {
                guard case .scores(let s) = result else { throw RunnerError("a score job returned another kind of result") }
                probabilities += s
            }
        }
        guard probabilities.count == space.cellCount else { throw RunnerError("scores do not cover the table") }
        self.probabilities = probabilities
        kendallTau = KendallTau.tauB(probabilities, (0..<space.cellCount).map { space.testAccuracy(ofRow: $0) })
        let elapsed = start.duration(to: clock.now)
        seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// The `k` cells the comparator rates highest (ties by row).
    public func top(_ k: Int) -> [Entry] {
        probabilities.indices.sorted { probabilities[$0] != probabilities[$1] ? probabilities[$0] > probabilities[$1] : $0 < $1 }
            .prefix(k).map { Entry(row: $0, probability: probabilities[$0]) }
    }
}
