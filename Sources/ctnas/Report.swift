import Foundation
import Coordinator

/// `ctnas report DIR`: one self-contained HTML page (inline CSS and SVG, nothing fetched) with the
/// charts of a running or finished search, read from DIR/metrics.jsonl and DIR/result.json.
enum Report {
    static let usage = "usage: ctnas report DIR [--output FILE] [--refresh SECONDS]"
    static let spec = CommandSpec(name: "report", summary: "Write DIR/report.html, one self-contained page of charts for a running or finished search (ctnas report DIR).", options: [
        .value("--dir", "DIR", nil, "the search's output folder (may also be given as the first argument)"),
        .value("--output", "FILE", nil, "where to write the page (default: DIR/report.html)"),
        .value("--refresh", "SECONDS", "30", "while the search runs, the page reloads itself this often; 0 never"),
    ])

    static func run(_ args: ParsedArguments) throws -> Int32 {
        try run(directory: directory(args, usage: usage), args)
    }

    static func run(directory: String, _ args: ParsedArguments) throws -> Int32 {
        let folder = try Folder(directory: directory)
        let refresh = try args.int("--refresh", in: 0...86_400) ?? 30
        let output = args.string("--output") ?? folder.directory.appendingPathComponent("report.html").path
        let html = page(folder, refresh: refresh)
        try Data(html.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        print(output)
        return 0
    }

    /// The output folder from `--dir` (main maps a bare first argument onto it).
    static func directory(_ args: ParsedArguments, usage: String) throws -> String {
        guard let dir = args.string("--dir"), !dir.isEmpty else {
            throw UsageError(message: "missing the search's output folder (\(usage))")
        }
        return dir
    }

    struct FolderError: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: - Reading an output folder

    /// The events of `metrics.jsonl` (unreadable lines skipped, an unfinished last line tolerated)
    /// and `result.json` when the search has finished.
    struct Folder {
        let directory: URL
        var events: [JSON] = []
        var skippedLines = 0
        var truncatedLastLine = false
        var lastModified: Date?
        var result: JSON?
        var resultProblem: String?

        init(directory path: String) throws {
            directory = URL(fileURLWithPath: path)
            let metrics = directory.appendingPathComponent("metrics.jsonl")
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw FolderError(description: "\(path) is not a folder (expected a search's output folder holding metrics.jsonl)")
            }
            guard FileManager.default.fileExists(atPath: metrics.path) else {
                throw FolderError(description: "\(path) has no metrics.jsonl; is it a search's --output folder?")
            }
            let data: Data
            do { data = try Data(contentsOf: metrics) } catch {
                throw FolderError(description: "cannot read \(metrics.path): \(error.localizedDescription)")
            }
            lastModified = (try? FileManager.default.attributesOfItem(atPath: metrics.path))?[.modificationDate] as? Date
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() {
                let isLast = index == lines.count - 1   // after the last newline: empty, or still being written
                guard !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) else { continue }
                if let text = String(data: Data(line), encoding: .utf8), let event = try? JSON.parse(text), event["event"]?.stringValue != nil {
                    events.append(event)
                } else if isLast {
                    truncatedLastLine = true
                } else {
                    skippedLines += 1
                }
            }
            let resultURL = directory.appendingPathComponent("result.json")
            if FileManager.default.fileExists(atPath: resultURL.path) {
                if let text = try? String(contentsOf: resultURL, encoding: .utf8), let json = try? JSON.parse(text), json["best"] != nil {
                    result = json
                } else {
                    resultProblem = "result.json is present but unreadable"
                }
            }
        }
    }

    struct Point { var x: Double; var y: Double }

    /// A pick of the baseline curriculum as an event reports it.
    struct Pick {
        var hash: String
        var testAccuracy: Double
        var rank: Int?
        var iteration: Int

        init?(_ event: JSON, prefix: String, iteration: Int) {
            guard let accuracy = event[prefix + "_test_accuracy"]?.doubleValue, accuracy.isFinite else { return nil }
            hash = event[prefix + "_hash"]?.stringValue ?? "?"
            testAccuracy = accuracy
            rank = event[prefix + "_rank"]?.intValue
            self.iteration = iteration
        }

        var json: JSON {
            .object([("hash", .string(hash)), ("test_accuracy", .number(testAccuracy)),
                     ("rank", rank.map(JSON.int) ?? .null), ("iteration", .int(iteration))])
        }
    }

    struct WorkerEvent { var joined: Bool; var worker: String; var detail: String }

    /// Everything the page and `ctnas status` show, folded from the events in order. Unknown
    /// events and missing fields are ignored.
    struct Summary {
        var pretrainLoss: [Point] = [], pretrainAccuracy: [Point] = [], pretrainTau: [Point] = []
        var searchLoss: [Point] = [], searchAccuracy: [Point] = [], searchTau: [Point] = []
        var reward: [Point] = [], entropy: [Point] = []
        var pickAccuracy: [Point] = [], pickRank: [Point] = [], bestSoFar: [Point] = []
        var epoch: Int?
        var iteration: Int?
        var searching = false
        var finishedEvent = false
        var tau: Double?
        var tauSource: String?
        var initialPick: Pick?
        var currentPick: Pick?
        var bestPick: Pick?
        var workersJoined = 0, workersLost = 0
        var activeWorkers: [String] = []
        var workerLog: [WorkerEvent] = []

        init(_ events: [JSON]) {
            for event in events {
                guard let kind = event["event"]?.stringValue else { continue }
                func number(_ key: String) -> Double? { event[key]?.doubleValue.flatMap { $0.isFinite ? $0 : nil } }
                let eventIteration = event["iteration"]?.intValue
                if let i = eventIteration, kind != "worker_joined", kind != "worker_lost" { iteration = max(iteration ?? i, i) }
                switch kind {
                case "comparator_epoch":
                    if event["phase"]?.stringValue == "search" || (event["epoch"] == nil && eventIteration != nil) {
                        searching = true
                        let x = Double(eventIteration ?? 0)
                        if let v = number("loss") { searchLoss.append(Point(x: x, y: v)) }
                        if let v = number("accuracy") { searchAccuracy.append(Point(x: x, y: v)) }
                        if let v = number("kendall_tau") {
                            searchTau.append(Point(x: x, y: v))
                            tau = v; tauSource = "re-trained at iteration \(eventIteration ?? 0)"
                        }
                    } else if let e = event["epoch"]?.intValue {
                        epoch = max(epoch ?? e, e)
                        let x = Double(e)
                        if let v = number("loss") { pretrainLoss.append(Point(x: x, y: v)) }
                        if let v = number("accuracy") { pretrainAccuracy.append(Point(x: x, y: v)) }
                        if let v = number("kendall_tau") {
                            pretrainTau.append(Point(x: x, y: v))
                            tau = v; tauSource = "pre-training epoch \(e)"
                        }
                    }
                case "search_started":
                    searching = true
                    if let v = number("kendall_tau"), tau == nil { tau = v; tauSource = "search start" }
                    if let pick = Pick(event, prefix: "baseline", iteration: 0) {
                        initialPick = pick
                        addPick(pick)
                    }
                case "policy":
                    searching = true
                    let x = Double(eventIteration ?? 0)
                    if let v = number("reward") { reward.append(Point(x: x, y: v)) }
                    if let v = number("entropy") { entropy.append(Point(x: x, y: v)) }
                case "baseline":
                    searching = true
                    if let pick = Pick(event, prefix: "best", iteration: eventIteration ?? 0) { addPick(pick) }
                case "finished":
                    finishedEvent = true
                case "worker_joined":
                    guard let worker = event["worker"]?.stringValue else { continue }
                    workersJoined += 1
                    if !activeWorkers.contains(worker) { activeWorkers.append(worker) }
                    workerLog.append(WorkerEvent(joined: true, worker: worker, detail: event["threads"]?.intValue.map { "\($0) thread\($0 == 1 ? "" : "s")" } ?? ""))
                case "worker_lost":
                    guard let worker = event["worker"]?.stringValue else { continue }
                    workersLost += 1
                    activeWorkers.removeAll { $0 == worker }
                    workerLog.append(WorkerEvent(joined: false, worker: worker, detail: event["reason"]?.stringValue ?? ""))
                default:
                    continue   // events this version does not know
                }
            }
        }

        private mutating func addPick(_ pick: Pick) {
            currentPick = pick
            if bestPick == nil || pick.testAccuracy > bestPick!.testAccuracy { bestPick = pick }
            let x = Double(pick.iteration)
            pickAccuracy.append(Point(x: x, y: pick.testAccuracy))
            if let r = pick.rank, r > 0 { pickRank.append(Point(x: x, y: Double(r))) }
            bestSoFar.append(Point(x: x, y: bestPick!.testAccuracy))
        }

        /// "finished", "searching", "pretraining" or "starting".
        func phase(hasResult: Bool) -> String {
            if hasResult || finishedEvent { return "finished" }
            if searching { return "searching" }
            if epoch != nil { return "pretraining" }
            return "starting"
        }

        func progress(hasResult: Bool) -> String {
            switch phase(hasResult: hasResult) {
            case "finished":
                return "finished" + (iteration.map { " after \($0) iterations" } ?? "")
            case "searching": return "iteration \(iteration ?? 0)"
            case "pretraining": return "pre-training epoch \(epoch ?? 0)"
            default: return "starting"
            }
        }
    }

    // MARK: - Formatting

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// What a pick is measured against: with search queries the pick is labelled itself, so the
    /// best of the random labels; otherwise the best labelled cell.
    static func yardstick(of result: JSON?) -> (name: String, cell: JSON)? {
        if let upFront = result?["best_labelled_up_front"] { return ("best cell labelled up front", upFront) }
        if let labelled = result?["best_labelled"] { return ("best labelled cell", labelled) }
        return nil
    }

    static func fixed(_ v: Double?, _ digits: Int = 4) -> String {
        guard let v, v.isFinite else { return "–" }
        return String(format: "%.\(digits)f", v)
    }

    /// 423624 → "423,624".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    static func age(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded()))
        if s < 120 { return "\(s) s ago" }
        if s < 7200 { return "\(s / 60) min ago" }
        if s < 172_800 { return "\(s / 3600) h ago" }
        return "\(s / 86_400) days ago"
    }

    // MARK: - The page

    static let palette = (blue: "#2563eb", orange: "#ea580c", green: "#16a34a", purple: "#7c3aed", grey: "#9ca3af", red: "#dc2626")

    static func page(_ folder: Folder, refresh: Int, now: Date = Date()) -> String {
        let summary = Summary(folder.events)
        let result = folder.result
        let finished = result != nil
        let phase = summary.phase(hasResult: finished)

        var html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        if !finished && refresh > 0 { html += "<meta http-equiv=\"refresh\" content=\"\(refresh)\">\n" }
        html += "<title>ctnas report: \(escape(folder.directory.lastPathComponent))</title>\n<style>\n\(css)</style>\n</head>\n<body>\n<main>\n"

        // Header
        let badge = finished ? "<span class=\"badge finished\">finished</span>" : "<span class=\"badge running\">running</span>"
        html += "<header>\n<h1>CTNAS search \(badge)</h1>\n"
        var sub = ["<span class=\"mono\">\(escape(folder.directory.path))</span>"]
        if let space = result?["space"]?.stringValue { sub.append("space \(escape(space))") }
        sub.append("\(grouped(folder.events.count)) events")
        if let modified = folder.lastModified {
            sub.append("last event \(escape(timestamp(modified))) (\(escape(age(now.timeIntervalSince(modified)))))")
        }
        sub.append("page written \(escape(timestamp(now)))")
        html += "<p class=\"sub\">" + sub.joined(separator: " · ") + "</p>\n"
        var warnings: [String] = []
        if !finished {
            warnings.append("The search is still running (no result.json yet): \(escape(summary.progress(hasResult: false))). "
                            + "Run <code>ctnas report</code> again to update this page" + (refresh > 0 ? "; it reloads itself every \(refresh) s." : "."))
        }
        if folder.skippedLines > 0 { warnings.append("\(folder.skippedLines) unreadable line\(folder.skippedLines == 1 ? "" : "s") of metrics.jsonl skipped.") }
        if folder.truncatedLastLine { warnings.append("The last line of metrics.jsonl is incomplete (still being written) and was left out.") }
        if let problem = folder.resultProblem { warnings.append(escape(problem) + ".") }
        for w in warnings { html += "<p class=\"notice\">\(w)</p>\n" }
        html += cards(summary, result: result, phase: phase)
        html += "</header>\n"

        // Comparator
        html += "<section>\n<h2>Comparator</h2>\n<div class=\"grid\">\n"
        html += figure(Chart(title: "Pre-training: loss and pair accuracy", xLabel: "epoch", yLabel: "loss / accuracy",
                             series: [.init(name: "loss", color: palette.blue, points: summary.pretrainLoss),
                                      .init(name: "training pair accuracy", color: palette.grey, points: summary.pretrainAccuracy)]))
        html += figure(Chart(title: "Pre-training: Kendall tau", xLabel: "epoch", yLabel: "Kendall tau (validation)",
                             series: [.init(name: "Kendall tau", color: palette.purple, points: summary.pretrainTau, markers: true)]))
        html += figure(Chart(title: "Search re-training: loss and pair accuracy", xLabel: "iteration", yLabel: "loss / accuracy",
                             series: [.init(name: "loss", color: palette.blue, points: summary.searchLoss, markers: true),
                                      .init(name: "training pair accuracy", color: palette.grey, points: summary.searchAccuracy, markers: true)]))
        html += figure(Chart(title: "Search re-training: Kendall tau", xLabel: "iteration", yLabel: "Kendall tau (validation)",
                             series: [.init(name: "Kendall tau", color: palette.purple, points: summary.searchTau, markers: true)]))
        html += "</div>\n</section>\n"

        // Controller
        html += "<section>\n<h2>Controller</h2>\n<div class=\"grid\">\n"
        html += figure(Chart(title: "Reward", xLabel: "iteration", yLabel: "mean reward",
                             series: [.init(name: "mean of 10 iterations", color: "#93c5fd", points: summary.reward, width: 1.2),
                                      .init(name: "moving average", color: palette.blue, points: movingAverage(summary.reward), width: 2.2)]))
        html += figure(Chart(title: "Entropy", xLabel: "iteration", yLabel: "entropy (nats)",
                             series: [.init(name: "mean of 10 iterations", color: "#fdba74", points: summary.entropy, width: 1.2),
                                      .init(name: "moving average", color: palette.orange, points: movingAverage(summary.entropy), width: 2.2)]))
        html += "</div>\n</section>\n"

        // Baseline curriculum
        var references: [Chart.Reference] = []
        if let yardstick = yardstick(of: result), let accuracy = yardstick.cell["test_accuracy"]?.doubleValue {
            references.append(.init(label: yardstick.name + " " + fixed(accuracy), y: accuracy, color: palette.red))
        }
        html += "<section>\n<h2>Baseline curriculum</h2>\n<div class=\"grid\">\n"
        html += figure(Chart(title: "Test accuracy of the pick", xLabel: "iteration", yLabel: "test accuracy",
                             series: [.init(name: "best so far", color: palette.blue, points: summary.bestSoFar, step: true, dashed: true, width: 2.2),
                                      .init(name: "curriculum pick", color: palette.green, points: summary.pickAccuracy, step: true, markers: true)],
                             references: references))
        html += figure(Chart(title: "Rank of the pick (1 = best cell)", xLabel: "iteration", yLabel: "rank (log scale)",
                             series: [.init(name: "curriculum pick", color: palette.green, points: summary.pickRank, step: true, markers: true)],
                             logY: true, invertY: true))
        html += "</div>\n</section>\n"

        // Chosen cell
        html += "<section>\n<h2>Chosen cell</h2>\n"
        if let best = result?["best"] {
            html += chosenCell(best)
        } else {
            html += "<p class=\"note\">The chosen cell is drawn here when the search finishes and writes result.json.</p>\n"
        }
        html += "</section>\n"

        // Workers
        html += "<section>\n<h2>Workers</h2>\n"
        html += "<p>\(summary.workersJoined) joined, \(summary.workersLost) lost"
        if !summary.activeWorkers.isEmpty {
            html += "; \(finished ? "still connected at the end" : "connected"): " + summary.activeWorkers.map { "<span class=\"mono\">\(escape($0))</span>" }.joined(separator: ", ")
        }
        html += ".</p>\n"
        if summary.workersLost > 0 {
            html += "<table class=\"events\"><tr><th>event</th><th>worker</th><th>detail</th></tr>\n"
            for e in summary.workerLog.prefix(200) {
                html += "<tr><td>\(e.joined ? "joined" : "<b>lost</b>")</td><td class=\"mono\">\(escape(e.worker))</td><td>\(escape(e.detail))</td></tr>\n"
            }
            html += "</table>\n"
            if summary.workerLog.count > 200 { html += "<p class=\"note\">\(summary.workerLog.count - 200) more worker events not shown.</p>\n" }
        }
        html += "</section>\n"

        if let note = result?["label_note"]?.stringValue { html += "<footer>\(escape(note))</footer>\n" }
        html += "</main>\n</body>\n</html>\n"
        return html
    }

    static func figure(_ chart: Chart) -> String { "<figure>\(chart.svg())</figure>\n" }

    static func movingAverage(_ points: [Point]) -> [Point] {
        guard points.count >= 20 else { return [] }
        let window = max(3, points.count / 25)
        var out: [Point] = []
        var sum = 0.0
        for (i, p) in points.enumerated() {
            sum += p.y
            if i >= window { sum -= points[i - window].y }
            if i >= window - 1 { out.append(Point(x: p.x, y: sum / Double(window))) }
        }
        return out
    }

    static func cards(_ s: Summary, result: JSON?, phase: String) -> String {
        func card(_ label: String, _ value: String, _ detail: String = "") -> String {
            "<div class=\"card\"><div class=\"label\">\(escape(label))</div><div class=\"value\">\(escape(value))</div>"
                + (detail.isEmpty ? "" : "<div class=\"detail\">\(escape(detail))</div>") + "</div>\n"
        }
        func rankText(_ r: Int?) -> String { r.map { "rank " + grouped($0) } ?? "rank –" }
        var html = "<div class=\"cards\">\n"
        if let result, let best = result["best"] {
            var detail = rankText(best["rank"]?.intValue)
            if let p = best["percentile"]?.doubleValue { detail += " · top \(fixed(p, 2)) %" }
            html += card("Best cell, test acc.", fixed(best["test_accuracy"]?.doubleValue), detail)
            if let upFront = result["best_labelled_up_front"] {
                html += card("Best labelled up front", fixed(upFront["test_accuracy"]?.doubleValue), rankText(upFront["rank"]?.intValue) + " · the yardstick")
                if let curriculum = result["curriculum_best"] {
                    html += card("Curriculum's choice", fixed(curriculum["test_accuracy"]?.doubleValue), rankText(curriculum["rank"]?.intValue) + " · before labelling")
                }
            } else if let labelled = result["best_labelled"] {
                html += card("Best labelled, test acc.", fixed(labelled["test_accuracy"]?.doubleValue), rankText(labelled["rank"]?.intValue) + " · the yardstick")
            }
            html += card("Kendall tau", fixed(result["comparator"]?["kendall_tau"]?.doubleValue ?? s.tau), "comparator, at the end")
            let iterations = result["iterations"]?.intValue.map { grouped($0) + " iterations" } ?? ""
            html += card("Seed · preset", "\(result["seed"]?.intValue.map(String.init) ?? "–") · \(result["preset"]?.stringValue ?? "–")", iterations)
            let queries = result["queries"]?.intValue.map { "\($0) labels" } ?? ""
            html += card("Wall time", result["wall_seconds"]?.doubleValue.map { fixed($0, 1) + " s" } ?? "–",
                         [result["workers"]?.intValue.map { "\($0) worker\($0 == 1 ? "" : "s")" }, queries].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " · "))
        } else {
            switch s.phase(hasResult: false) {
            case "searching":
                html += card("Iteration", grouped(s.iteration ?? 0), "searching" + (s.epoch.map { " · after \($0) pre-training epochs" } ?? ""))
            case "pretraining":
                html += card("Pre-training epoch", grouped(s.epoch ?? 0), "comparator on the labelled cells")
            default:
                html += card("Phase", "starting", "no comparator epoch yet")
            }
            if let best = s.bestPick {
                html += card("Best pick, test acc.", fixed(best.testAccuracy), rankText(best.rank) + " · iteration \(best.iteration)")
            } else {
                html += card("Best pick, test acc.", "–", "after pre-training")
            }
            if let current = s.currentPick {
                html += card("Baseline, test acc.", fixed(current.testAccuracy), rankText(current.rank))
            }
            html += card("Kendall tau", fixed(s.tau), s.tauSource ?? "")
        }
        html += card("Workers", "\(s.activeWorkers.count)", "\(s.workersJoined) joined · \(s.workersLost) lost")
        html += "</div>\n"
        if let result {
            var lines: [String] = []
            if let hash = result["best"]?["hash"]?.stringValue { lines.append("best cell <b>\(escape(hash))</b>") }
            if let hash = result["best_labelled"]?["hash"]?.stringValue { lines.append("best labelled \(escape(hash))") }
            if let digest = result["state_digest"]?.stringValue { lines.append("state_digest \(escape(digest))") }
            html += "<div class=\"digest\">" + lines.joined(separator: "<br>") + "</div>\n"
        }
        return html
    }

    // MARK: - The chosen cell

    static func opStyle(_ op: String) -> (fill: String, stroke: String) {
        let o = op.lowercased()
        if o == "input" || o == "output" { return ("#f3f4f6", "#6b7280") }
        if o.contains("conv3x3") || o.contains("conv_3x3") { return ("#dbeafe", "#2563eb") }
        if o.contains("conv1x1") || o.contains("conv_1x1") { return ("#dcfce7", "#16a34a") }
        if o.contains("pool") { return ("#ffedd5", "#ea580c") }
        return ("#f5f3ff", "#7c3aed")
    }

    /// Nodes in topological order (ties by index); nil if the matrix has a cycle.
    static func topologicalOrder(_ matrix: [[Int]]) -> [Int]? {
        let n = matrix.count
        var indegree = (0..<n).map { j in (0..<n).filter { matrix[$0][j] != 0 }.count }
        var order: [Int] = []
        var ready = (0..<n).filter { indegree[$0] == 0 }
        while let next = ready.min() {
            ready.removeAll { $0 == next }
            order.append(next)
            for j in 0..<n where matrix[next][j] != 0 {
                indegree[j] -= 1
                if indegree[j] == 0 { ready.append(j) }
            }
        }
        return order.count == n ? order : nil
    }

    static func chosenCell(_ best: JSON) -> String {
        var ops: [String] = []
        if case .array(let items)? = best["ops"] { ops = items.map { $0.stringValue ?? "?" } }
        var matrix: [[Int]] = []
        if case .array(let rows)? = best["matrix"] {
            for row in rows {
                if case .array(let cells) = row { matrix.append(cells.map { $0.intValue ?? 0 }) } else { matrix.append([]) }
            }
        }
        var html = ""
        if let hash = best["hash"]?.stringValue {
            html += "<p>Cell <span class=\"mono\">\(escape(hash))</span>: test accuracy \(fixed(best["test_accuracy"]?.doubleValue))"
            if let rank = best["rank"]?.intValue { html += ", rank \(grouped(rank))" }
            html += ". Nodes in topological order, left to right.</p>\n"
        }
        let n = ops.count
        guard n > 0, matrix.count == n, matrix.allSatisfy({ $0.count == n }) else {
            return html + "<p class=\"note\">Cannot draw the cell: result.json's ops and matrix do not match (\(n) ops, \(matrix.count) rows).</p>\n"
        }
        guard let order = topologicalOrder(matrix) else {
            return html + "<p class=\"note\">Cannot draw the cell: its matrix has a cycle.</p>\n"
        }
        html += "<div class=\"cell\">\n<figure class=\"graph\">" + cellSVG(ops: ops, matrix: matrix, order: order) + "</figure>\n"
        // The adjacency matrix beside it.
        html += "<table class=\"matrix\"><tr><th></th>" + (0..<n).map { "<th title=\"\(escape(ops[$0]))\">\($0)</th>" }.joined() + "</tr>\n"
        for i in 0..<n {
            html += "<tr><th class=\"op\">\(i) \(escape(ops[i]))</th>" + (0..<n).map { matrix[i][$0] != 0 ? "<td class=\"on\">1</td>" : "<td>0</td>" }.joined() + "</tr>\n"
        }
        html += "</table>\n</div>\n"
        return html
    }

    static func cellSVG(ops: [String], matrix: [[Int]], order: [Int]) -> String {
        let n = ops.count
        let boxW = 128.0, boxH = 36.0, margin = 16.0
        let spacing = n > 1 ? min(176.0, max(boxW + 24, (1100 - 2 * margin - boxW) / Double(n - 1))) : 0
        let width = 2 * margin + boxW + spacing * Double(max(n - 1, 0))
        var position = [Int](repeating: 0, count: n)
        for (k, node) in order.enumerated() { position[node] = k }
        func centreX(_ node: Int) -> Double { margin + boxW / 2 + spacing * Double(position[node]) }

        // Edges: neighbours in the order get a straight arrow; longer ones an arc, alternately above and below.
        struct Edge { var from: Int; var to: Int; var span: Int; var above: Bool }
        var edges: [Edge] = []
        for i in 0..<n { for j in 0..<n where matrix[i][j] != 0 { edges.append(Edge(from: i, to: j, span: position[j] - position[i], above: true)) } }
        // Arcs go above or below the row: the split with the fewest crossings (two arcs on one side cross
        // when their spans interleave; nested or disjoint ones do not), then the lowest drawing.
        func lift(_ span: Int) -> Double { 30 + 24 * Double(abs(span) - 2) }
        func interval(_ e: Edge) -> (Int, Int) { (min(position[e.from], position[e.to]), max(position[e.from], position[e.to])) }
        func crosses(_ a: Edge, _ b: Edge) -> Bool {
            let (a0, a1) = interval(a), (b0, b1) = interval(b)
            return (a0 < b0 && b0 < a1 && a1 < b1) || (b0 < a0 && a0 < b1 && b1 < a1)
        }
        let arcs = edges.indices.filter { abs(edges[$0].span) != 1 }
        if arcs.count <= 16 {
            var bestCost = Double.infinity, bestMask = 0
            for mask in 0..<(1 << arcs.count) {
                var crossings = 0, up = 0.0, down = 0.0
                for (a, i) in arcs.enumerated() {
                    let above = mask & (1 << a) == 0
                    if above { up = max(up, lift(edges[i].span)) } else { down = max(down, lift(edges[i].span)) }
                    for (b, j) in arcs.enumerated() where b > a && (mask & (1 << b) == 0) == above && crosses(edges[i], edges[j]) { crossings += 1 }
                }
                let cost = Double(crossings) * 10_000 + up + down
                if cost < bestCost { bestCost = cost; bestMask = mask }
            }
            for (a, i) in arcs.enumerated() { edges[i].above = bestMask & (1 << a) == 0 }
        } else {
            for (a, i) in arcs.enumerated() { edges[i].above = a % 2 == 0 }
        }
        let upper = edges.filter { abs($0.span) != 1 && $0.above }.map { lift($0.span) }.max() ?? 0
        let lower = edges.filter { abs($0.span) != 1 && !$0.above }.map { lift($0.span) }.max() ?? 0
        let midY = margin + upper + boxH / 2 + 4
        let height = midY + boxH / 2 + lower + margin + 4

        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = "<svg class=\"cellgraph\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(f(width))\" height=\"\(f(height))\" role=\"img\" aria-label=\"chosen cell\">"
        svg += "<defs><marker id=\"cell-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">"
        svg += "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#374151\"/></marker></defs>"
        // Arcs leaving one node on one side start apart, the longer (outer) ones nearer its centre;
        // arcs arriving end apart the same way, so nested arcs never touch.
        func slot(_ e: Edge, start: Bool) -> Int {
            edges.filter { o in abs(o.span) != 1 && o.above == e.above && (start ? o.from == e.from : o.to == e.to)
                && (abs(o.span), position[o.from] + position[o.to]) < (abs(e.span), position[e.from] + position[e.to]) }.count
        }
        for e in edges {
            let x1 = centreX(e.from), x2 = centreX(e.to)
            if abs(e.span) == 1 {
                let dir = x2 > x1 ? 1.0 : -1.0
                svg += "<line x1=\"\(f(x1 + dir * boxW / 2))\" y1=\"\(f(midY))\" x2=\"\(f(x2 - dir * boxW / 2))\" y2=\"\(f(midY))\" class=\"edge\" marker-end=\"url(#cell-arrow)\"/>"
            } else {
                let sign = e.above ? -1.0 : 1.0
                let y = midY + sign * boxH / 2
                let dir = x2 > x1 ? 1.0 : -1.0
                let sx = x1 + dir * (boxW * 0.36 - 11 * Double(min(slot(e, start: true), 4)))
                let ex = x2 - dir * (boxW * 0.36 - 11 * Double(min(slot(e, start: false), 4)))
                let cy = y + sign * lift(e.span) * 4 / 3   // a cubic with both controls here peaks at `lift`
                svg += "<path d=\"M\(f(sx)),\(f(y)) C\(f(sx)),\(f(cy)) \(f(ex)),\(f(cy)) \(f(ex)),\(f(y))\" class=\"edge\" fill=\"none\" marker-end=\"url(#cell-arrow)\"/>"
            }
        }
        for node in 0..<n {
            let x = centreX(node) - boxW / 2, y = midY - boxH / 2
            let style = opStyle(ops[node])
            svg += "<g><title>\(escape("node \(node): \(ops[node])"))</title>"
            svg += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(boxW))\" height=\"\(f(boxH))\" rx=\"7\" fill=\"\(style.fill)\" stroke=\"\(style.stroke)\" stroke-width=\"1.5\"/>"
            svg += "<text x=\"\(f(centreX(node)))\" y=\"\(f(midY + 4))\" text-anchor=\"middle\" class=\"op\">\(escape(ops[node]))</text>"
            svg += "<text x=\"\(f(x + 4))\" y=\"\(f(y + 10))\" class=\"index\">\(node)</text></g>"
        }
        return svg + "</svg>"
    }

    static let css = """
    :root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #f9fafb; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #fff; }
    main { max-width: 1180px; margin: 0 auto; padding: 20px 20px 40px; }
    h1 { font-size: 22px; margin: 0 0 2px; }
    h2 { font-size: 16px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
    section { margin-top: 26px; }
    .sub { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
    .mono, code, .digest { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
    .badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; vertical-align: 3px; margin-left: 6px; }
    .badge.finished { background: #dcfce7; color: #166534; }
    .badge.running { background: #fef3c7; color: #92400e; }
    .notice { background: #fffbeb; border: 1px solid #fde68a; border-radius: 6px; padding: 6px 10px; margin: 0 0 10px; font-size: 13px; }
    .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
    .card .label { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
    .card .value { font-size: 21px; font-weight: 600; font-variant-numeric: tabular-nums; }
    .card .detail { font-size: 12px; color: var(--muted); }
    .digest { font-size: 12px; color: var(--muted); margin-top: 10px; word-break: break-all; }
    .digest b { color: var(--ink); font-weight: 600; }
    .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 12px; }
    figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 4px; background: #fff; }
    svg.chart { display: block; width: 100%; height: auto; }
    svg text { font-family: inherit; font-size: 11px; fill: #4b5563; }
    svg text.title { font-size: 13px; font-weight: 600; fill: var(--ink); }
    svg text.empty { font-size: 13px; fill: #9ca3af; font-style: italic; }
    svg .grid-line { stroke: #eef0f3; stroke-width: 1; }
    svg .axis { stroke: #9ca3af; stroke-width: 1; }
    svg .edge { stroke: #374151; stroke-width: 1.4; }
    svg text.op { font-size: 12px; font-weight: 600; fill: var(--ink); }
    svg text.index { font-size: 9px; fill: #6b7280; }
    .cell { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
    .cell figure.graph { overflow-x: auto; max-width: 100%; }
    svg.cellgraph { display: block; max-width: 100%; height: auto; }
    table { border-collapse: collapse; font-size: 12px; }
    table.matrix td, table.matrix th { border: 1px solid var(--line); padding: 2px 7px; text-align: center; font-variant-numeric: tabular-nums; }
    table.matrix th.op { text-align: left; font-weight: 500; }
    table.matrix td { color: #c0c4cc; }
    table.matrix td.on { color: var(--ink); font-weight: 700; background: #eff6ff; }
    table.events td, table.events th { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; }
    .note { color: var(--muted); font-style: italic; }
    footer { margin-top: 28px; color: var(--muted); font-size: 12px; }

    """
}

// MARK: - A small SVG line chart

extension Report {
    struct Chart {
        struct Series {
            var name: String
            var color: String
            var points: [Point]
            var step = false
            var dashed = false
            var markers = false
            var width = 1.8
        }
        struct Reference { var label: String; var y: Double; var color: String }

        var title: String
        var xLabel: String
        var yLabel: String
        var series: [Series]
        var references: [Reference] = []
        var logY = false
        var invertY = false
        var width = 560.0
        var height = 300.0

        struct Axis {
            var lo: Double, hi: Double
            var ticks: [Double]
            var step: Double
            var log: Bool
        }

        static func linearAxis(_ lo: Double, _ hi: Double, count: Int, integer: Bool) -> Axis {
            var lo = lo, hi = hi
            if hi - lo <= abs(hi) * 1e-12 {
                if integer { hi += 1 } else {   // counts grow from a single value; other values get room both ways
                    let pad = max(abs(lo) * 0.01, 1e-6)
                    lo -= pad; hi += pad
                }
            }
            let raw = (hi - lo) / Double(count)
            let magnitude = pow(10, floor(log10(raw)))
            let residual = raw / magnitude
            var step = (residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10) * magnitude
            if integer { step = max(step, 1) }
            let first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step
            var ticks: [Double] = []
            var k = 0.0
            while first + k * step <= last + step * 1e-6 { ticks.append(first + k * step); k += 1 }
            return Axis(lo: first, hi: last, ticks: ticks, step: step, log: false)
        }

        static func logAxis(_ lo: Double, _ hi: Double) -> Axis {
            let a = floor(log10(lo)), b = max(ceil(log10(hi)), a + 1)
            var ticks: [Double] = []
            for e in stride(from: a, through: b, by: 1) {
                ticks.append(pow(10, e))
                if b - a <= 2 && e < b { ticks += [2 * pow(10, e), 5 * pow(10, e)] }
            }
            return Axis(lo: pow(10, a), hi: pow(10, b), ticks: ticks, step: 1, log: true)
        }

        static func label(_ v: Double, _ axis: Axis) -> String {
            if axis.log || (abs(v) >= 10_000 && v == v.rounded()) {
                let a = abs(v)
                if a >= 1_000_000, (a / 1_000_000) == (a / 1_000_000).rounded() { return (v < 0 ? "-" : "") + String(Int(a / 1_000_000)) + "M" }
                if a >= 1_000, (a / 1_000) == (a / 1_000).rounded() { return (v < 0 ? "-" : "") + String(Int(a / 1_000)) + "k" }
                return String(Int(v.rounded()))
            }
            let digits = max(0, Int(-floor(log10(axis.step) + 1e-9)))
            let s = String(format: "%.\(digits)f", v)
            return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s   // no "-0.00"
        }

        func svg() -> String {
            let left = 64.0, right = 20.0, top = 54.0, bottom = 44.0
            let plotW = width - left - right, plotH = height - top - bottom
            func f(_ v: Double) -> String { String(format: "%.1f", v) }
            let esc = Report.escape
            var out = "<svg class=\"chart\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(f(width))\" height=\"\(f(height))\" role=\"img\" aria-label=\"\(esc(title))\">"
            out += "<text x=\"12\" y=\"22\" class=\"title\">\(esc(title))</text>"

            // Legend under the title.
            var lx = 12.0
            let anyData = series.contains { !$0.points.isEmpty }
            for s in series where !s.points.isEmpty || !anyData {
                out += "<line x1=\"\(f(lx))\" y1=\"37\" x2=\"\(f(lx + 18))\" y2=\"37\" stroke=\"\(s.color)\" stroke-width=\"\(f(max(s.width, 2)))\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
                out += "<text x=\"\(f(lx + 23))\" y=\"41\">\(esc(s.name))</text>"
                lx += 23 + Double(s.name.count) * 6.2 + 16
            }

            let visible = series.map { s in s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) } }
            let all = visible.flatMap { $0 }
            // Frame and axis labels, present even without data.
            out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(esc(xLabel))</text>"
            out += "<text transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>"
            guard !all.isEmpty else {
                out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"#fafafa\" stroke=\"#e5e7eb\"/>"
                out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH / 2 + 4))\" text-anchor=\"middle\" class=\"empty\">no data yet</text>"
                return out + "</svg>"
            }
            let refs = references.filter { $0.y.isFinite && (!logY || $0.y > 0) }
            let ys = all.map(\.y) + refs.map(\.y)
            // Epochs and iterations count from 0: the x axis starts there unless the data goes below.
            let xAxis = Chart.linearAxis(min(0, all.map(\.x).min()!), all.map(\.x).max()!, count: 6, integer: true)
            let yAxis = logY ? Chart.logAxis(ys.min()!, ys.max()!) : Chart.linearAxis(ys.min()!, ys.max()!, count: 5, integer: false)
            func px(_ x: Double) -> Double { left + (x - xAxis.lo) / (xAxis.hi - xAxis.lo) * plotW }
            func py(_ y: Double) -> Double {
                let t = yAxis.log ? (log10(y) - log10(yAxis.lo)) / (log10(yAxis.hi) - log10(yAxis.lo)) : (y - yAxis.lo) / (yAxis.hi - yAxis.lo)
                return invertY ? top + t * plotH : top + (1 - t) * plotH
            }

            for t in yAxis.ticks {
                let y = py(t)
                out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" class=\"grid-line\"/>"
                out += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 3.5))\" text-anchor=\"end\">\(esc(Chart.label(t, yAxis)))</text>"
            }
            for t in xAxis.ticks {
                let x = px(t)
                out += "<line x1=\"\(f(x))\" y1=\"\(f(top + plotH))\" x2=\"\(f(x))\" y2=\"\(f(top + plotH + 4))\" class=\"axis\"/>"
                out += "<text x=\"\(f(x))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(esc(Chart.label(t, xAxis)))</text>"
            }
            out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" class=\"axis\"/>"
            out += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" class=\"axis\"/>"

            for r in refs {
                let y = py(r.y)
                out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" stroke=\"\(r.color)\" stroke-width=\"1.2\" stroke-dasharray=\"2 3\"/>"
                out += "<text x=\"\(f(left + plotW - 4))\" y=\"\(f(y - 4))\" text-anchor=\"end\" style=\"fill: \(r.color)\">\(esc(r.label))</text>"
            }

            for (s, points) in zip(series, visible) where !points.isEmpty {
                var coords: [String] = []
                for (i, p) in points.enumerated() {
                    if s.step && i > 0 { coords.append("\(f(px(p.x))),\(f(py(points[i - 1].y)))") }
                    coords.append("\(f(px(p.x))),\(f(py(p.y)))")
                }
                if s.step, let lastPoint = points.last {
                    // A step line holds its last value up to the newest data on the chart.
                    let newest = all.map(\.x).max()!
                    if newest > lastPoint.x { coords.append("\(f(px(newest))),\(f(py(lastPoint.y)))") }
                }
                if coords.count > 1 {
                    out += "<polyline points=\"\(coords.joined(separator: " "))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(f(s.width))\" stroke-linejoin=\"round\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
                }
                if s.markers || points.count == 1 {
                    for p in points {
                        out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"2.6\" fill=\"\(s.color)\"/>"
                    }
                }
            }
            return out + "</svg>"
        }
    }
}
