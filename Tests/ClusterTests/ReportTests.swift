import XCTest
import Foundation
import Coordinator

/// `ctnas report` and `ctnas status` run as the built executable on output folders written here:
/// a finished search, one still running (no result.json, last line cut short) and an empty one.
final class ReportTests: XCTestCase {
    static var binary: String? { ProcessClusterTests.binary }

    static let bestHash = "0938cdac67a1892821590d876bcfc6d9"
    static let chartCount = 8

    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-report-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    // MARK: Fixture

    static let events: [String] = [
        #"{"event":"worker_joined","worker":"local-0","threads":1}"#,
        #"{"event":"worker_joined","worker":"tcp <b>&amp; \"host\"","threads":2}"#,
        #"{"event":"comparator_epoch","phase":"pretraining","epoch":1,"loss":0.69,"accuracy":0.55}"#,
        #"{"event":"comparator_epoch","phase":"pretraining","epoch":2,"loss":0.61,"accuracy":0.66}"#,
        #"{"event":"checkpoint","iteration":0,"path":"checkpoint-0.bin"}"#,
        #"{"event":"comparator_epoch","phase":"pretraining","epoch":3,"loss":0.52,"accuracy":0.71,"kendall_tau":0.41}"#,
        #"{"event":"search_started","kendall_tau":0.41,"baseline_hash":"c2fdfa8fd144d4edce2b19d72179ced8","baseline_test_accuracy":0.9274,"baseline_rank":45812}"#,
        #"{"event":"comparator_epoch","phase":"search","iteration":0,"loss":0.45,"accuracy":0.8,"kendall_tau":0.52,"pseudo_pool":256}"#,
        #"{"event":"baseline","iteration":0,"best_hash":"ea9270f536a1f1094f446246dad4fe89","best_test_accuracy":0.9381,"best_rank":1440}"#,
        #"{"event":"policy","iteration":10,"reward":0.06,"entropy":22.9,"log_probability":-22.9}"#,
        #"{"event":"policy","iteration":20,"reward":0.12,"entropy":22.1,"log_probability":-22.0}"#,
        #"{"event":"worker_lost","worker":"local-0","reason":"silent for 2 s"}"#,
        #"{"event":"policy","iteration":30,"reward":0.2,"entropy":21.5,"log_probability":-21.4}"#,
        #"{"event":"comparator_epoch","phase":"search","iteration":40,"loss":0.4,"accuracy":0.83,"kendall_tau":0.55,"pseudo_pool":356}"#,
        #"{"event":"policy","iteration":40,"reward":0.25,"entropy":20.7,"log_probability":-20.8}"#,
        #"{"event":"baseline","iteration":40,"best_hash":"0938cdac67a1892821590d876bcfc6d9","best_test_accuracy":0.9366,"best_rank":3273}"#,
    ]

    static let result = """
    {
      "space": "nasbench101", "seed": 7, "preset": "default", "workers": 2, "queries": 423, "iterations": 40,
      "comparator": {"kendall_tau": 0.55},
      "best": {
        "hash": "\(bestHash)",
        "ops": ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"],
        "matrix": [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        "test_accuracy": 0.9366, "rank": 3273, "percentile": 0.7726
      },
      "best_labelled": {"hash": "d0d0d234237111e390eed729c55d7ae7", "test_accuracy": 0.9405, "rank": 219},
      "wall_seconds": 8.1,
      "state_digest": "defe0bb8539e975f1400a564896c8ef4c343394efc325af912111d4fc863a323"
    }
    """

    /// A finished search, or one still running: no result.json and a last line cut off mid-write.
    func folder(_ name: String, finished: Bool) throws -> URL {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var text = Self.events.joined(separator: "\n") + "\n"
        if finished {
            text += #"{"event":"finished","best_row":15288}"# + "\n"
            try Data(Self.result.utf8).write(to: dir.appendingPathComponent("result.json"))
        } else {
            text += #"{"event":"policy","iteration":50,"rew"#
        }
        try Data(text.utf8).write(to: dir.appendingPathComponent("metrics.jsonl"))
        return dir
    }

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    func ctnas(_ arguments: [String]) throws -> Run {
        guard let binary = Self.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    func report(_ dir: URL) throws -> String {
        let run = try ctnas(["report", dir.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let page = dir.appendingPathComponent("report.html")
        XCTAssertTrue(FileManager.default.fileExists(atPath: page.path))
        return try String(contentsOf: page, encoding: .utf8)
    }

    func status(_ dir: URL) throws -> JSON {
        let run = try ctnas(["status", dir.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        return try JSON.parse(run.stdout)
    }

    func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    func assertSelfContained(_ html: String, file: StaticString = #filePath, line: UInt = #line) {
        for forbidden in ["http://", "https://", "<script", "<link", "@import", "<img", "<iframe"] {
            XCTAssertFalse(html.lowercased().contains(forbidden), "report.html contains \(forbidden)", file: file, line: line)
        }
        XCTAssertFalse(html.contains("url(") && html.replacingOccurrences(of: "url(#", with: "").contains("url("),
                       "report.html refers to a resource by url()", file: file, line: line)
    }

    // MARK: report

    func testReportOfAFinishedSearch() throws {
        let html = try report(folder("finished", finished: true))
        assertSelfContained(html)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertEqual(count("<svg", in: html), Self.chartCount + 1, "one <svg> per chart and one for the chosen cell")
        XCTAssertEqual(count("class=\"cellgraph\"", in: html), 1)
        XCTAssertEqual(count("</svg>", in: html), Self.chartCount + 1)
        XCTAssertTrue(html.contains(Self.bestHash))
        XCTAssertTrue(html.contains("defe0bb8539e975f1400a564896c8ef4c343394efc325af912111d4fc863a323"))
        for title in ["Comparator", "Kendall tau", "Controller", "Reward", "Entropy", "Baseline curriculum", "Chosen cell", "maxpool3x3", "finished"] {
            XCTAssertTrue(html.contains(title), title)
        }
        XCTAssertFalse(html.contains("http-equiv=\"refresh\""), "a finished search's page does not reload itself")
        // Text from the files is escaped.
        XCTAssertTrue(html.contains("tcp &lt;b&gt;&amp;amp; &quot;host&quot;"))
        XCTAssertFalse(html.contains("tcp <b>"))
    }

    func testReportOfARunningSearchWithACutOffLastLine() throws {
        let html = try report(folder("running", finished: false))
        assertSelfContained(html)
        XCTAssertEqual(count("<svg", in: html), Self.chartCount, "no chosen cell before result.json exists")
        XCTAssertTrue(html.contains("running"))
        XCTAssertFalse(html.contains("class=\"cellgraph\""))
        XCTAssertTrue(html.contains(Self.bestHash) || html.contains("0.9381"), "the best pick so far is shown")
        XCTAssertTrue(html.contains("http-equiv=\"refresh\""))
    }

    func testReportOfAnEmptyLogHasEmptyCharts() throws {
        let dir = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data().write(to: dir.appendingPathComponent("metrics.jsonl"))
        let html = try report(dir)
        assertSelfContained(html)
        XCTAssertEqual(count("<svg", in: html), Self.chartCount)
        XCTAssertEqual(count("no data yet", in: html), Self.chartCount)
        XCTAssertEqual(try status(dir)["phase"]?.stringValue, "starting")
    }

    func testReportWritesWhereTold() throws {
        let dir = try folder("elsewhere", finished: true)
        let target = root.appendingPathComponent("page.html")
        let run = try ctnas(["report", dir.path, "--output", target.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: target.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("report.html").path))
    }

    // MARK: status

    func testStatusOfAFinishedSearch() throws {
        let s = try status(folder("finished", finished: true))
        XCTAssertEqual(s["phase"]?.stringValue, "finished")
        XCTAssertEqual(s["finished"], .bool(true))
        XCTAssertEqual(s["epoch"]?.intValue, 3)
        XCTAssertEqual(s["iteration"]?.intValue, 40)
        XCTAssertEqual(try XCTUnwrap(s["kendall_tau"]?.doubleValue), 0.55, accuracy: 1e-9)
        XCTAssertEqual(s["best_so_far"]?["hash"]?.stringValue, "ea9270f536a1f1094f446246dad4fe89")
        XCTAssertEqual(s["best_so_far"]?["rank"]?.intValue, 1440)
        XCTAssertEqual(s["current_baseline"]?["hash"]?.stringValue, Self.bestHash)
        XCTAssertEqual(s["workers"]?["joined"]?.intValue, 2)
        XCTAssertEqual(s["workers"]?["lost"]?.intValue, 1)
        XCTAssertEqual(s["workers"]?["active"], .array([.string("tcp <b>&amp; \"host\"")]))
        XCTAssertEqual(s["truncated_last_line"], .bool(false))
        XCTAssertNotNil(s["last_event_time"]?.stringValue)
        let result = try XCTUnwrap(s["result"])
        XCTAssertEqual(result["best"]?["hash"]?.stringValue, Self.bestHash)
        XCTAssertEqual(result["best"]?["rank"]?.intValue, 3273)
        XCTAssertEqual(result["best_labelled"]?["rank"]?.intValue, 219)
        XCTAssertEqual(result["seed"]?.intValue, 7)
        XCTAssertEqual(result["preset"]?.stringValue, "default")
        XCTAssertEqual(result["state_digest"]?.stringValue, "defe0bb8539e975f1400a564896c8ef4c343394efc325af912111d4fc863a323")
    }

    func testResultOfASearchWithSearchQueriesShowsTheUpFrontYardstick() throws {
        let dir = try folder("queried", finished: true)
        let queried = Self.result.replacingOccurrences(of: #""wall_seconds": 8.1,"#, with: """
          "best_labelled_up_front": {"hash": "0938cdac67a1892821590d876bcfc6d9", "test_accuracy": 0.9377, "rank": 1804},
          "curriculum_best": {"hash": "ea9270f536a1f1094f446246dad4fe89", "test_accuracy": 0.9351, "rank": 4410},
          "wall_seconds": 8.1,
        """)
        XCTAssertNotEqual(queried, Self.result)
        try Data(queried.utf8).write(to: dir.appendingPathComponent("result.json"))
        let result = try XCTUnwrap(status(dir)["result"])
        XCTAssertEqual(result["best_labelled_up_front"]?["rank"]?.intValue, 1804)
        XCTAssertEqual(result["curriculum_best"]?["rank"]?.intValue, 4410)
        let text = try ctnas(["status", dir.path])
        XCTAssertTrue(text.stdout.contains("best labelled up front 0.9377"), text.stdout)
        XCTAssertTrue(text.stdout.contains("curriculum's choice 0.9351"), text.stdout)
        let html = try report(dir)
        assertSelfContained(html)
        XCTAssertTrue(html.contains("Best labelled up front"))
        XCTAssertTrue(html.contains("best cell labelled up front 0.9377"))
        XCTAssertTrue(html.contains("Curriculum&#39;s choice") || html.contains("Curriculum's choice"))
    }

    func testStatusOfARunningSearch() throws {
        let dir = try folder("running", finished: false)
        let s = try status(dir)
        XCTAssertEqual(s["phase"]?.stringValue, "searching")
        XCTAssertEqual(s["finished"], .bool(false))
        XCTAssertEqual(s["iteration"]?.intValue, 40, "the cut-off line is not counted")
        XCTAssertEqual(s["events"]?.intValue, Self.events.count)
        XCTAssertEqual(s["truncated_last_line"], .bool(true))
        XCTAssertEqual(s["skipped_lines"]?.intValue, 0)
        XCTAssertEqual(s["result"], .null)

        let text = try ctnas(["status", dir.path])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("running"))
        XCTAssertTrue(text.stdout.contains("iteration 40"))
    }

    func testStatusDuringPretraining() throws {
        let dir = root.appendingPathComponent("pretraining")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data((Self.events.prefix(4).joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("metrics.jsonl"))
        let s = try status(dir)
        XCTAssertEqual(s["phase"]?.stringValue, "pretraining")
        XCTAssertEqual(s["epoch"]?.intValue, 2)
        XCTAssertEqual(s["best_so_far"], .null)
    }

    func testAFolderWithoutMetricsIsRefused() throws {
        for command in ["status", "report"] {
            let run = try ctnas([command, root.path])
            XCTAssertEqual(run.status, 1, command)
            XCTAssertTrue(run.stderr.contains("metrics.jsonl"), run.stderr)
        }
    }
}
