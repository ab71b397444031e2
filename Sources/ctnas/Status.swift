import Foundation
import Coordinator

/// `ctnas status DIR`: where a running or finished search stands, from its output folder.
enum Status {
    static let usage = "usage: ctnas status DIR [--json]"
    static let spec = CommandSpec(name: "status", summary: "Summarise a running or finished search from its output folder (ctnas status DIR).", options: [
        .value("--dir", "DIR", nil, "the search's output folder (may also be given as the first argument)"),
        .flag("--json", "print one JSON object"),
    ])

    static func run(_ args: ParsedArguments) throws -> Int32 {
        try run(directory: Report.directory(args, usage: usage), args)
    }

    static func run(directory: String, _ args: ParsedArguments) throws -> Int32 {
        let folder = try Report.Folder(directory: directory)
        if args.has("--json") {
            print(json(folder).serialized())
        } else {
            print(text(folder))
        }
        return 0
    }

    static func json(_ folder: Report.Folder, now: Date = Date()) -> JSON {
        let s = Report.Summary(folder.events)
        let result = folder.result
        func optional(_ v: Int?) -> JSON { v.map(JSON.int) ?? .null }
        func optional(_ v: Double?) -> JSON { v.map(JSON.number) ?? .null }
        var fields: [(String, JSON)] = [
            ("directory", .string(folder.directory.path)),
            ("phase", .string(s.phase(hasResult: result != nil))),
            ("finished", .bool(result != nil || s.finishedEvent)),
            ("epoch", optional(s.epoch)),
            ("iteration", optional(s.iteration)),
            ("kendall_tau", optional(s.tau)),
            ("best_so_far", s.bestPick?.json ?? .null),
            ("current_baseline", s.currentPick?.json ?? .null),
            ("workers", .object([("joined", .int(s.workersJoined)), ("lost", .int(s.workersLost)),
                                 ("active", .array(s.activeWorkers.map(JSON.string)))])),
            ("events", .int(folder.events.count)),
            ("skipped_lines", .int(folder.skippedLines)),
            ("truncated_last_line", .bool(folder.truncatedLastLine)),
            ("last_event_time", folder.lastModified.map { .string(Report.timestamp($0)) } ?? .null),
            ("seconds_since_last_event", optional(folder.lastModified.map { now.timeIntervalSince($0) })),
        ]
        if let result {
            var headline: [(String, JSON)] = []
            for key in ["best", "best_labelled", "best_labelled_up_front", "curriculum_best"] {
                if let v = result[key] {
                    headline.append((key, .object(["hash", "test_accuracy", "rank", "percentile"].compactMap { k in v[k].map { (k, $0) } })))
                }
            }
            headline.append(("kendall_tau", result["comparator"]?["kendall_tau"] ?? .null))
            for key in ["seed", "preset", "space", "workers", "queries", "iterations", "wall_seconds", "state_digest"] {
                if let v = result[key] { headline.append((key, v)) }
            }
            fields.append(("result", .object(headline)))
        } else {
            fields.append(("result", .null))
        }
        if let problem = folder.resultProblem { fields.append(("result_problem", .string(problem))) }
        return .object(fields)
    }

    static func text(_ folder: Report.Folder, now: Date = Date()) -> String {
        let s = Report.Summary(folder.events)
        let result = folder.result
        let f = { (v: Double?) in Report.fixed(v) }
        func pick(_ p: Report.Pick) -> String {
            "\(f(p.testAccuracy)) test accuracy, rank \(p.rank.map(String.init) ?? "–") (iteration \(p.iteration), \(p.hash))"
        }
        var rows: [(String, String)] = []
        var progress: String
        switch s.phase(hasResult: result != nil) {
        case "finished":
            progress = "finished (" + [s.epoch.map { "\($0) pre-training epochs" }, s.iteration.map { "\($0) iterations" }]
                .compactMap { $0 }.joined(separator: ", ") + ")"
            if progress == "finished ()" { progress = "finished" }
        case "searching":
            progress = "searching, iteration \(s.iteration ?? 0)" + (s.epoch.map { " (after \($0) pre-training epochs)" } ?? "")
        case "pretraining":
            progress = "pre-training the comparator, epoch \(s.epoch ?? 0)"
        default:
            progress = "starting (no comparator epoch yet)"
        }
        rows.append(("phase", progress))
        if let tau = s.tau { rows.append(("kendall tau", f(tau) + (s.tauSource.map { " (\($0))" } ?? ""))) }
        if let best = s.bestPick { rows.append(("best so far", pick(best))) }
        if let current = s.currentPick, result == nil { rows.append(("baseline", pick(current))) }
        var workers = "\(s.workersJoined) joined, \(s.workersLost) lost"
        if !s.activeWorkers.isEmpty { workers += "; connected: " + s.activeWorkers.joined(separator: ", ") }
        rows.append(("workers", workers))
        if let modified = folder.lastModified {
            rows.append(("last event", "\(Report.timestamp(modified)) (\(Report.age(now.timeIntervalSince(modified))))"))
        }
        var notes: [String] = []
        if folder.skippedLines > 0 { notes.append("\(folder.skippedLines) unreadable lines skipped") }
        if folder.truncatedLastLine { notes.append("last line still being written") }
        if let problem = folder.resultProblem { notes.append(problem) }
        if !notes.isEmpty { rows.append(("note", notes.joined(separator: "; "))) }
        if let result, let best = result["best"] {
            var line = "best \(best["hash"]?.stringValue ?? "?"): \(f(best["test_accuracy"]?.doubleValue)), rank \(best["rank"]?.intValue.map(String.init) ?? "–")"
            if let p = best["percentile"]?.doubleValue { line += " (top \(Report.fixed(p, 4)) %)" }
            rows.append(("result", line))
            for (key, name) in [("best_labelled", "best labelled"), ("best_labelled_up_front", "best labelled up front"), ("curriculum_best", "curriculum's choice")] {
                if let cell = result[key] {
                    rows.append(("", "\(name) \(f(cell["test_accuracy"]?.doubleValue)), rank \(cell["rank"]?.intValue.map(String.init) ?? "–")"))
                }
            }
            var run: [String] = []
            if let tau = result["comparator"]?["kendall_tau"]?.doubleValue { run.append("tau \(f(tau))") }
            if let seed = result["seed"]?.intValue { run.append("seed \(seed)") }
            if let preset = result["preset"]?.stringValue { run.append("preset \(preset)") }
            if let seconds = result["wall_seconds"]?.doubleValue { run.append(Report.fixed(seconds, 1) + " s") }
            if !run.isEmpty { rows.append(("", run.joined(separator: ", "))) }
            if let digest = result["state_digest"]?.stringValue { rows.append(("", "state_digest \(digest)")) }
        }
        let state = result != nil ? "finished" : (s.finishedEvent ? "finishing" : "running")
        let width = rows.map(\.0.count).max() ?? 0
        return (["\(folder.directory.path): \(state)"] + rows.map { "  " + $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 })
            .joined(separator: "\n")
    }
}
