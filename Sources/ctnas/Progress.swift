import Foundation
import Protocol
import Coordinator

/// What a search tells the person watching it, on stderr. Three styles:
/// - `terminal` (stderr is a TTY, `--log-format text`): one status line redrawn in place
///   (at most every `redrawInterval` seconds) with phase, progress, time left, best cell,
///   comparator tau, comparator pairs per second and live workers; notable events and
///   messages are printed as ordinary lines above it.
/// - `text` (stderr is not a TTY): the notable lines only, each with a UTC timestamp.
/// - `json` (`--log-format json`): every metrics event and message as one JSON object per
///   line, with "time" added.
/// Fed by the session (events, messages, the position after each step), by the cluster's
/// worker events on the runner's I/O thread, and by the runner's pair counter: every entry
/// point takes the lock. The clock, the terminal width and the output are injected.
final class ProgressDisplay: @unchecked Sendable {
    enum Style: String { case terminal, text, json }

    let style: Style
    let quiet: Bool
    let epochs: Int
    let iterations: Int
    private let clock: @Sendable () -> Double
    private let width: @Sendable () -> Int
    private let output: @Sendable (String) -> Void
    /// Test accuracy and rank of a table row.
    private let cell: (Int) -> (accuracy: Double, rank: Int)
    static let redrawInterval = 0.2
    /// Seconds of history behind the step and pair rates.
    static let rateWindow = 20.0

    private let lock = NSLock()
    private var liveWorkers: (@Sendable () -> Int)?
    private var phase: SearchPhase?
    private var position = 0
    private var started: Double?
    private var steps: [(time: Double, value: Int)] = []
    private var pairTotal = 0
    private var pairs: [(time: Double, value: Int)] = []
    private var bestRow = -1
    private var best: (accuracy: Double, rank: Int)?
    private var tau: Double?
    private var shown = false      // a status line is on screen
    private var dirty = false
    private var lastDraw = -Double.infinity
    private var closed = false
    private var finishedAt: Double?
    private var ticker: DispatchSourceTimer?

    init(style: Style, quiet: Bool, epochs: Int, iterations: Int, cell: @escaping (Int) -> (accuracy: Double, rank: Int),
         clock: @escaping @Sendable () -> Double, width: @escaping @Sendable () -> Int,
         output: @escaping @Sendable (String) -> Void) {
        self.cell = cell
        self.style = style
        self.quiet = quiet
        self.epochs = epochs
        self.iterations = iterations
        self.clock = clock
        self.width = width
        self.output = output
    }

    /// The display for this process's stderr: `json` if asked, else `terminal` when stderr is a TTY.
    static func standardError(json: Bool, quiet: Bool, epochs: Int, iterations: Int,
                              cell: @escaping (Int) -> (accuracy: Double, rank: Int)) -> ProgressDisplay {
        let style: Style = json ? .json : (isatty(2) == 1 ? .terminal : .text)
        let display = ProgressDisplay(style: style, quiet: quiet, epochs: epochs, iterations: iterations, cell: cell,
                                      clock: { Date().timeIntervalSince1970 }, width: { terminalWidth() },
                                      output: { FileHandle.standardError.write(Data($0.utf8)) })
        if style == .terminal && !quiet { display.startTicker() }
        return display
    }

    /// Columns of the terminal on stderr, or 100 when it cannot say.
    static func terminalWidth() -> Int {
        var size = winsize()
        guard withUnsafeMutablePointer(to: &size, { ioctl(2, UInt(TIOCGWINSZ), $0) }) == 0, size.ws_col > 0 else { return 100 }
        return Int(size.ws_col)
    }

    /// Where the live worker count comes from (the runner, once it exists).
    func countWorkers(with count: @escaping @Sendable () -> Int) {
        lock.withLock { liveWorkers = count }
    }

    // MARK: Input

    /// A progress message that is not a metrics event. `always` ones are shown even with --quiet.
    func message(_ text: String, always: Bool = false) {
        lock.withLock {
            guard !quiet || always, !closed || always else { return }
            if style == .json {
                let warning = text.hasPrefix("warning: ")
                emitJSON([("event", .string(warning ? "warning" : "message")),
                          ("message", .string(warning ? String(text.dropFirst(9)) : text))])
            } else {
                printLine(text)
            }
        }
    }

    /// A metrics event: from the search, or a worker event from the cluster.
    func event(_ event: JSON) {
        lock.withLock {
            let kind = event["event"]?.stringValue ?? ""
            let always = kind == "worker_refused"
            guard !quiet || always, !closed || always else { return }
            if style == .json {
                if case .object(let fields) = event { emitJSON(fields) }
            } else if let line = Self.notableLine(event) {
                printLine(line)
            } else {
                dirty = true
            }
        }
    }

    /// The search's position: before the first step and after each one.
    func step(_ state: SearchState) {
        lock.withLock {
            let now = clock()
            if started == nil { started = now }
            if state.phase != phase { steps = [] }
            phase = state.phase
            position = state.phase == .pretraining ? state.epoch : state.iteration
            if state.phase == .finished, finishedAt == nil { finishedAt = now }
            if state.lastTau.isFinite { tau = state.lastTau }
            if state.bestRow >= 0 && state.bestRow != bestRow {
                bestRow = state.bestRow
                best = cell(bestRow)
            }
            steps.append((now, position))
            trim(&steps, now: now)
            redraw(force: false)
        }
    }

    /// Comparator pairs (scored or trained) in a finished batch of jobs.
    func countPairs(_ count: Int) {
        lock.withLock {
            let now = clock()
            if pairs.isEmpty { pairs.append((started ?? now, 0)) }
            pairTotal += count
            pairs.append((now, pairTotal))
            trim(&pairs, now: now)
            dirty = true
        }
    }

    /// Redraws a status line that changed (or is a second old); the ticker calls it.
    func tick() {
        lock.withLock {
            if dirty || clock() - lastDraw >= 1 { redraw(force: false) }
        }
    }

    /// Leaves the final status line on its own line. Later input is dropped (but `always` messages).
    func finish() {
        lock.withLock {
            guard !closed else { return }
            ticker?.cancel()
            ticker = nil
            if shown { output("\r\u{1B}[K" + statusLine() + "\n") }
            shown = false
            closed = true
        }
    }

    // MARK: Output

    /// The status line, at most `width - 1` columns: whole fields are dropped from the end first.
    func statusLine() -> String {
        guard let phase else { return "" }
        let now = finishedAt ?? clock()
        var fields: [String] = []
        switch phase {
        case .pretraining:
            fields.append("pre-training \(position)/\(epochs) \(Self.percent(position, epochs))")
            if let left = timeLeft(total: epochs) { fields.append("\(Self.duration(left)) to search") }
        case .searching:
            fields.append("search \(position)/\(iterations) \(Self.percent(position, iterations))")
            if let left = timeLeft(total: iterations) { fields.append("\(Self.duration(left)) left") }
        case .finished:
            fields.append("finished \(iterations)/\(iterations) 100%")
            if let started { fields.append("took \(Self.duration(now - started))") }
        }
        if let best { fields.append(String(format: "best %.4f #%d", best.accuracy, best.rank)) }
        if let tau, tau.isFinite { fields.append(String(format: "tau %.3f", tau)) }
        if let rate = pairRate(now: now) { fields.append(Self.rate(rate) + " pairs/s") }
        if let liveWorkers {
            let n = liveWorkers()
            fields.append("\(n) worker\(n == 1 ? "" : "s")")
        }
        return Self.fit(fields, width: width() - 1)
    }

    static func fit(_ fields: [String], width: Int) -> String {
        var count = fields.count
        while count > 1 && fields[..<count].joined(separator: "  ").count > width { count -= 1 }
        return String(fields[..<count].joined(separator: "  ").prefix(max(width, 1)))
    }

    private func printLine(_ text: String) {
        switch style {
        case .terminal:
            output("\r\u{1B}[K" + text + "\n")
            shown = false
            redraw(force: true)
        case .text:
            output(Self.timestamp(clock(), milliseconds: false) + " " + text + "\n")
        case .json:
            break
        }
    }

    private func emitJSON(_ fields: [(String, JSON)]) {
        output(JSON.object([("time", .string(Self.timestamp(clock(), milliseconds: true)))] + fields).serialized() + "\n")
    }

    private func redraw(force: Bool) {
        guard style == .terminal, !quiet, !closed, phase != nil else { return }
        let now = clock()
        guard force || now - lastDraw >= Self.redrawInterval else { dirty = true; return }
        output("\r\u{1B}[K" + statusLine())
        shown = true
        dirty = false
        lastDraw = now
    }

    private func startTicker() {
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + Self.redrawInterval, repeating: Self.redrawInterval)
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        ticker = timer
    }

    // MARK: Figures

    /// Keeps the samples of the last `rateWindow` seconds, and the one just before them as the start.
    private func trim(_ samples: inout [(time: Double, value: Int)], now: Double) {
        while samples.count > 2 && samples[1].time <= now - Self.rateWindow { samples.removeFirst() }
    }

    private func timeLeft(total: Int) -> Double? {
        guard let first = steps.first, let last = steps.last, last.value > first.value, last.time > first.time else { return nil }
        let perSecond = Double(last.value - first.value) / (last.time - first.time)
        return Double(max(total - position, 0)) / perSecond
    }

    private func pairRate(now: Double) -> Double? {
        if phase == .finished, let started, now > started { return pairTotal > 0 ? Double(pairTotal) / (now - started) : nil }
        guard let first = pairs.first, let last = pairs.last, last.value > first.value, now > first.time else { return nil }
        return Double(last.value - first.value) / (now - first.time)
    }

    /// The lines printed above the status line (terminal) or as the log (text).
    static func notableLine(_ event: JSON) -> String? {
        func s(_ key: String) -> String { event[key]?.stringValue ?? "?" }
        switch event["event"]?.stringValue {
        case "worker_joined": return "worker \(s("worker")) joined with \(event["threads"]?.intValue ?? 0) thread(s)"
        case "worker_lost": return "worker \(s("worker")) lost: \(s("reason"))"
        case "worker_refused": return "ctnas: refused a worker from \(s("address")): \(s("reason"))"
        case "message_dropped":
            let hidden = event["not_shown_before"]?.intValue ?? 0
            return "dropped a message from \(s("from")): \(s("reason"))" + (hidden > 0 ? " (and \(hidden) more not shown)" : "")
        default: return SearchSession.progressLine(event)
        }
    }

    static func percent(_ done: Int, _ total: Int) -> String {
        total > 0 ? "\(min(100, done * 100 / total))%" : "100%"
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = max(0, Int(seconds.rounded()))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, s / 60 % 60)
    }

    static func rate(_ perSecond: Double) -> String {
        if perSecond < 1000 { return String(format: "%.0f", perSecond) }
        if perSecond < 100_000 { return String(format: "%.1fk", perSecond / 1000) }
        if perSecond < 1_000_000 { return String(format: "%.0fk", perSecond / 1000) }
        return String(format: "%.1fM", perSecond / 1_000_000)
    }

    /// UTC, ISO 8601: 2025-06-01T12:34:56Z (or .789Z).
    static func timestamp(_ time: Double, milliseconds: Bool) -> String {
        var seconds = time_t(time.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                          parts.tm_hour, parts.tm_min, parts.tm_sec)
        if milliseconds { text += String(format: ".%03d", min(999, Int((time - time.rounded(.down)) * 1000))) }
        return text + "Z"
    }
}

/// Forwards to the cluster and tells the display how many comparator pairs each finished batch held.
final class CountingRunner: JobRunner {
    let base: JobRunner
    let counted: (Int) -> Void

    init(_ base: JobRunner, counted: @escaping (Int) -> Void) {
        self.base = base
        self.counted = counted
    }

    func publish(_ weights: Weights) throws { try base.publish(weights) }

    func run(_ jobs: [JobPayload]) throws -> [ResultPayload] {
        let results = try base.run(jobs)
        counted(jobs.reduce(0) { sum, job in
            switch job {
            case .score(let j): return sum + j.pairs.count
            case .comparatorGradient(let j): return sum + j.pairs.count
            case .policyGradient: return sum
            }
        })
        return results
    }
}
