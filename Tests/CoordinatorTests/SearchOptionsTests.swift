import Foundation
import XCTest
import Engine
@testable import Coordinator

final class SearchOptionsTests: XCTestCase {
    func testPaperPresetIsTheOriginalSchedule() {
        let p = SearchOptions.paper
        XCTAssertEqual(p.comparatorEpochs, 1000)
        XCTAssertEqual(p.iterations, 10_000)
        XCTAssertEqual(p.samplesPerUpdate, 1)
        XCTAssertEqual(p.baselineEvery, 500)
        XCTAssertEqual(p.exploreEvery, 100)
        XCTAssertEqual(p.queries, 423)
        XCTAssertEqual(p.comparatorBatch, 256)
        XCTAssertEqual(p.comparatorLearningRate, 2e-4)
        XCTAssertEqual(p.entropyCoefficient, 5e-4)
        XCTAssertFalse(p.startFromBestLabelled, "the paper preset starts from a uniform sample, as the original code")
        XCTAssertNil(p.problem)
    }

    func testProblemsAreNamed() {
        var o = SearchOptions()
        o.shards = 0
        XCTAssertEqual(o.problem, "--shards must be in 1...4096")
        o = SearchOptions(); o.samplesPerUpdate = 0
        XCTAssertNotNil(o.problem)
        XCTAssertNil(SearchOptions.named("nonsense"))
    }

    func testNewSettingsDefaultsAndOldManifestsReadAsTheyRan() throws {
        XCTAssertEqual(SearchOptions().nodeWidths, .channels)
        XCTAssertEqual(SearchOptions.paper.nodeWidths, .channels)
        var o = SearchOptions()
        o.nodeWidths = .uniform
        let encoded = try JSONEncoder().encode(o)
        XCTAssertEqual(try JSONDecoder().decode(SearchOptions.self, from: encoded), o)
        // A run.json written before widths existed ran the paper's NAC: it must resume as one.
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: try JSONEncoder().encode(SearchOptions())) as? [String: Any])
        XCTAssertNotNil(object.removeValue(forKey: "comparatorNodeWidths"))
        XCTAssertNotNil(object.removeValue(forKey: "finalDeriveSampleCount"))
        XCTAssertNotNil(object.removeValue(forKey: "searchQueryCount"))
        let old = try JSONDecoder().decode(SearchOptions.self, from: try JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(old.nodeWidths, .uniform)
        XCTAssertEqual(old.finalDeriveSamples, old.deriveSamples, "the last update of an old run derived as many as the others")
        XCTAssertEqual(old.searchQueries, 0, "an old run queried every label up front")
        XCTAssertEqual(SearchOptions().finalDeriveSamples, 100)
        o = SearchOptions(); o.finalDeriveSamples = 0
        XCTAssertEqual(o.problem, "--final-samples must be in 1...1000")
        o = SearchOptions(); o.queries = 50; o.searchQueries = 49
        XCTAssertEqual(o.problem, "--search-queries must be in 0...48 (--queries minus 2)")
        o.searchQueries = 48
        XCTAssertNil(o.problem)
    }

    func testJSONRoundTripsThroughParse() throws {
        let value = JSON.object([("a", .int(3)), ("b", .number(0.25)), ("c", .string("x\"y\n")), ("d", .array([.bool(true), .null]))])
        let parsed = try JSON.parse(value.serialized())
        XCTAssertEqual(parsed["a"]?.intValue, 3)
        XCTAssertEqual(parsed["b"]?.doubleValue, 0.25)
        XCTAssertEqual(parsed["c"]?.stringValue, "x\"y\n")
        XCTAssertEqual(try JSON.parse(value.serialized(pretty: true))["d"], .array([.bool(true), .null]))
    }
}
