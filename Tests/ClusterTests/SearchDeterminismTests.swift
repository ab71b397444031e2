import XCTest
import Foundation
@testable import Coordinator
import Engine
import Protocol
import Worker

/// The shared NAS-Bench-101 table, loaded once for all tests that need it.
enum SharedTable {
    static let path: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/data/nasbench101.csv.gz").path
    }()
    nonisolated(unsafe) static var cached: NASBench101Space?
    static let lock = NSLock()

    static func space() throws -> NASBench101Space {
        lock.lock(); defer { lock.unlock() }
        if let s = cached { return s }
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no table at \(path)") }
        let s = NASBench101Space(table: try NASBench101Table.load(path: path))
        cached = s
        return s
    }
}

/// A schedule small enough for tests that still goes through every phase.
func tinyOptions(seed: UInt64 = 3) -> SearchOptions {
    var o = SearchOptions()
    o.seed = seed
    o.queries = 40
    o.validationCells = 20
    o.comparatorBatch = 16
    o.comparatorEpochs = 3
    o.evaluateEvery = 2
    o.iterations = 12
    o.samplesPerUpdate = 2
    o.baselineEvery = 5
    o.exploreEvery = 5
    o.explorePairs = 6
    o.deriveSamples = 3
    o.shards = 5
    return o
}

final class SearchDeterminismTests: XCTestCase {
    func runSearch(workers: Int, options: SearchOptions, space: NASBench101Space) throws -> (digest: String, events: [JSON], best: Int) {
        let context = try ZMQContext()
        let endpoint = "inproc://determinism-\(workers)-\(UInt64.random(in: 0 ... .max))"
        let runner = try ClusterRunner(bind: endpoint, context: context)
        defer { runner.shutdown() }
        let nodes = (0..<workers).map { k in
            WorkerNode(endpoint: endpoint, executor: JobExecutor(space: space), threads: 1 + k % 2, workerId: "w\(k)", context: context)
        }
        for node in nodes { Thread { try? node.run() }.start() }
        defer { nodes.forEach { $0.stop() } }
        try runner.waitForWorkers(count: workers, timeout: .seconds(10))
        var events = [JSON]()
        let search = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { events.append($0) }
        try search.runToEnd()
        return (search.state.digest, events, search.state.bestRow)
    }

    func testSameDigestWithOneTwoAndSevenWorkers() throws {
        let space = try SharedTable.space()
        let options = tinyOptions()
        let one = try runSearch(workers: 1, options: options, space: space)
        let two = try runSearch(workers: 2, options: options, space: space)
        let seven = try runSearch(workers: 7, options: options, space: space)
        XCTAssertEqual(one.digest, two.digest)
        XCTAssertEqual(one.digest, seven.digest)
        XCTAssertEqual(one.best, seven.best)
        XCTAssertEqual(one.events.map { $0.serialized() }, seven.events.map { $0.serialized() })

        // In-process jobs without any messaging give the same bits too.
        let direct = Search(space: space, state: SearchState(space: space, options: options),
                            runner: DirectRunner(executor: JobExecutor(space: space), threads: 2)) { _ in }
        try direct.runToEnd()
        XCTAssertEqual(direct.state.digest, one.digest)
    }

    func testNodeWidthsOptionDecidesWhatWorkersSee() throws {
        let space = try SharedTable.space()
        // A row whose module splits its output among several vertices, so widths below 128 exist.
        let row = try XCTUnwrap((0..<space.cellCount).first { space.encoding(ofRow: $0).widths.contains { $0 < GraphEncoding.fullWidth } })
        var options = tinyOptions()
        let runner = DirectRunner(executor: JobExecutor(space: space))
        let channels = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { _ in }
        XCTAssertEqual(channels.cellsAndPairs([(row, row)]).0, [space.encoding(ofRow: row)])
        options.nodeWidths = .uniform
        let uniform = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { _ in }
        let sent = uniform.cellsAndPairs([(row, row)]).0
        XCTAssertEqual(sent.map(\.ops), [space.encoding(ofRow: row).ops])
        XCTAssert(sent[0].widths.allSatisfy { $0 == GraphEncoding.fullWidth })
        // And the two comparators are different models: the same weights score the row differently.
        let comparator = channels.state.comparator
        XCTAssertNotEqual(comparator.features(of: [space.encoding(ofRow: row)]), comparator.features(of: sent))
    }

    func testSearchGoesThroughEveryPhase() throws {
        let space = try SharedTable.space()
        let options = tinyOptions(seed: 5)
        let run = try runSearch(workers: 2, options: options, space: space)
        let kinds = run.events.compactMap { $0["event"]?.stringValue }
        XCTAssertEqual(kinds.filter { $0 == "comparator_epoch" }.count, options.comparatorEpochs + 12 / 5 + 1)
        XCTAssertEqual(kinds.filter { $0 == "baseline" }.count, 12 / 5 + 1 + 1)  // iterations 0, 5, 10 and the final one
        XCTAssertEqual(kinds.first, "comparator_epoch")
        XCTAssertEqual(kinds.last, "finished")
        XCTAssert((0..<space.cellCount).contains(run.best))
        let taus = run.events.compactMap { $0["kendall_tau"]?.doubleValue }
        XCTAssertFalse(taus.isEmpty)
        XCTAssert(taus.allSatisfy { (-1...1).contains($0) })
    }

    func testDifferentSeedsDiffer() throws {
        let space = try SharedTable.space()
        let a = Search(space: space, state: SearchState(space: space, options: tinyOptions(seed: 1)),
                       runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        let b = Search(space: space, state: SearchState(space: space, options: tinyOptions(seed: 2)),
                       runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        try a.runToEnd(); try b.runToEnd()
        XCTAssertNotEqual(a.state.digest, b.state.digest)
    }

    func testStartFromBestLabelledUsesTheYardstickCell() throws {
        let space = try SharedTable.space()
        var options = tinyOptions()
        options.startFromBestLabelled = true
        var events = [JSON]()
        let search = Search(space: space, state: SearchState(space: space, options: options),
                            runner: DirectRunner(executor: JobExecutor(space: space))) { events.append($0) }
        try search.runToEnd()
        let started = try XCTUnwrap(events.first { $0["event"]?.stringValue == "search_started" })
        XCTAssertEqual(started["baseline_hash"]?.stringValue, space.describe(row: search.bestLabelledRow).hash)
        let labelled = space.split(seed: options.seed, train: options.queries, validation: options.validationCells).train
        XCTAssertEqual(labelled.map { space.label(ofRow: $0) }.max(), space.label(ofRow: search.bestLabelledRow))
    }

    func testSearchQueriesLabelTheCurriculumsFavouritesAndKeepDeterminism() throws {
        let space = try SharedTable.space()
        var options = tinyOptions(seed: 4)
        options.searchQueries = 5
        options.epochsAfterQuery = 2
        options.queryPool = 10
        let one = try runSearch(workers: 1, options: options, space: space)
        let three = try runSearch(workers: 3, options: options, space: space)
        XCTAssertEqual(one.digest, three.digest)

        let search = Search(space: space, state: SearchState(space: space, options: options),
                            runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        try search.runToEnd()
        XCTAssertEqual(search.state.digest, one.digest)
        let split = space.split(seed: options.seed, train: options.queries, validation: options.validationCells)
        // Held back off the end of the split; the validation cells are those of a search without queries.
        XCTAssertEqual(search.initialTrainRows, Array(split.train.prefix(options.queries - 5)))
        XCTAssertEqual(search.validationRows, split.validation)
        // Updates at iterations 0, 5 and 10 spend 2, 1 and 1 labels, each on a cell not labelled
        // before; the last label goes to the curriculum's final choice unless it has one already.
        let queried = search.state.queriedRows
        let finalChoiceWasLabelled = !queried.contains(search.state.bestRow)  // or is a validation cell
        XCTAssertEqual(queried.count, finalChoiceWasLabelled ? 4 : 5)
        XCTAssertEqual(Set(queried).count, queried.count)
        XCTAssert(Set(queried).isDisjoint(with: search.initialTrainRows))
        XCTAssertEqual(search.trainRows, search.initialTrainRows + queried)
        XCTAssert(Set(queried).isDisjoint(with: search.validationRows), "tau's cells stay unlabelled")
        XCTAssert(search.trainRows.contains(search.state.bestRow) || search.validationRows.contains(search.state.bestRow))
        let queryEvents = one.events.filter { $0["event"]?.stringValue == "query" }
        XCTAssertEqual(queryEvents.compactMap { $0["count"]?.intValue }, finalChoiceWasLabelled ? [2, 1, 1] : [2, 1, 1, 1])
        XCTAssertEqual(queryEvents.flatMap { event -> [Int] in
            guard case .array(let rows)? = event["rows"] else { return [] }
            return rows.compactMap(\.intValue)
        }, queried)
        // Each query during the search is followed by the comparator re-training on the new labels.
        let kinds = one.events.compactMap { $0["event"]?.stringValue }
        for (k, kind) in kinds.enumerated() where kind == "query" && kinds[k + 1] != "finished" {
            XCTAssertEqual(kinds[k + 1], "comparator_epoch")
        }
        // The pick is the highest-labelled cell; the curriculum's own choice is among the candidates.
        let labels = search.trainRows.map { space.label(ofRow: $0) }
        XCTAssertEqual(space.label(ofRow: search.pickRow), labels.max())
        XCTAssertGreaterThanOrEqual(space.label(ofRow: search.pickRow), space.label(ofRow: search.state.bestRow))
        let finished = try XCTUnwrap(one.events.last)
        XCTAssertEqual(finished["best_row"]?.intValue, search.pickRow)
        XCTAssertEqual(finished["curriculum_best_row"]?.intValue, search.state.bestRow)
        // Without search queries the state carries none and the digest is another.
        options.searchQueries = 0
        let none = try runSearch(workers: 1, options: options, space: space)
        XCTAssertNotEqual(none.digest, one.digest)
        XCTAssertFalse(none.events.contains { $0["event"]?.stringValue == "query" })
    }
}
