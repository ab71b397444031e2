import Foundation
import Engine

public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Saves and restores the whole search state. Writes are atomic (temporary file, fsync, rename,
/// fsync of the directory) and the newest two are kept, so a crash at any moment leaves at least
/// one complete checkpoint, and a damaged newest one falls back to the one before.
public struct CheckpointStore: Sendable {
    public static let formatVersion: UInt64 = 1
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    // MARK: Writing

    public func save(_ state: SearchState, space: any SearchSpace) throws {
        let sequence = (existing().last?.sequence ?? 0) + 1
        let bytes = Self.encode(state, space: space)
        let final = directory.appendingPathComponent(String(format: "checkpoint-%08d.ctnas", sequence))
        let temporary = directory.appendingPathComponent(".checkpoint-\(sequence).tmp")
        try writeDurably(bytes, to: temporary, then: final)
        FaultInjection.reached("checkpoint-written")
        for old in existing().dropLast(2) { try? FileManager.default.removeItem(at: old.url) }
    }

    private func writeDurably(_ bytes: [UInt8], to temporary: URL, then final: URL) throws {
        func failure(_ what: String, _ code: Int32) -> CheckpointError {
            CheckpointError(message: "cannot write checkpoint in \(directory.path): \(what): \(String(cString: strerror(code))); the previous checkpoint is intact")
        }
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open", errno) }
        var ok = false
        defer { if !ok { close(fd); unlink(temporary.path) } }
        var written = 0
        let half = bytes.count / 2
        while written < bytes.count {
            if written >= half { FaultInjection.reached("checkpoint-write") }
            let chunk = min(bytes.count - written, written < half ? half - written : bytes.count - written)
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, chunk) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write", errno)
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw failure("fsync", errno) }
        guard close(fd) == 0 else { ok = true; unlink(temporary.path); throw failure("close", errno) }
        ok = true
        guard rename(temporary.path, final.path) == 0 else {
            let code = errno
            unlink(temporary.path)
            throw failure("rename", code)
        }
        let dirFD = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
    }

    // MARK: Reading

    struct Entry { let sequence: Int; let url: URL }

    func existing() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> Entry? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".ctnas"),
                  let n = Int(name.dropFirst("checkpoint-".count).dropLast(".ctnas".count)) else { return nil }
            return Entry(sequence: n, url: directory.appendingPathComponent(name))
        }.sorted { $0.sequence < $1.sequence }
    }

    /// The newest checkpoint that reads back whole, or nil when there is none. A damaged one is
    /// skipped with a warning; one from another table or format is refused with an error.
    public func loadNewest(space: any SearchSpace, warn: (String) -> Void) throws -> SearchState? {
        for entry in existing().reversed() {
            let bytes: [UInt8]
            do {
                bytes = Array(try Data(contentsOf: entry.url))
            } catch {
                warn("cannot read \(entry.url.lastPathComponent): \(error.localizedDescription); trying the previous checkpoint")
                continue
            }
            do {
                return try Self.decode(bytes, space: space, name: entry.url.lastPathComponent)
            } catch let error as CheckpointError {
                throw error
            } catch {
                warn("\(entry.url.lastPathComponent) is damaged (\(error)); falling back to the previous checkpoint")
            }
        }
        return nil
    }

    // MARK: Format

    static func encode(_ state: SearchState, space: any SearchSpace) -> [UInt8] {
        var a = Archive()
        a.set("format", words: [formatVersion])
        a.set("space", bytes: Array(space.name.utf8))
        a.set("table", bytes: Array(space.tableFingerprint.utf8))
        a.set("options", bytes: Array((try? JSONEncoder().encode(state.options)) ?? Data()))
        let phase: UInt64 = state.phase == .pretraining ? 0 : state.phase == .searching ? 1 : 2
        a.set("counters", words: [phase, UInt64(state.epoch), UInt64(state.iteration), state.comparatorVersion, state.controllerVersion,
                                  UInt64(bitPattern: Int64(state.baselineRow)), UInt64(bitPattern: Int64(state.bestRow)),
                                  UInt64(state.eventCount), UInt64(state.summaryCount),
                                  UInt64(state.comparatorOptimizer.step), UInt64(state.controllerOptimizer.step)])
        a.set("doubles", words: [state.lastTau, state.summaryReward, state.summaryEntropy, state.summaryLogProbability].map(\.bitPattern))
        a.set("generator", words: state.generator.state)
        a.set("comparator", floats: state.comparator.parameters)
        a.set("comparator.m", floats: state.comparatorOptimizer.firstMoment)
        a.set("comparator.v", floats: state.comparatorOptimizer.secondMoment)
        a.set("controller", floats: state.controller.parameters)
        a.set("controller.m", floats: state.controllerOptimizer.firstMoment)
        a.set("controller.v", floats: state.controllerOptimizer.secondMoment)
        a.set("pseudo", words: state.pseudoPool.flatMap { [UInt64(bitPattern: Int64($0.first)), UInt64(bitPattern: Int64($0.second)), UInt64($0.label.bitPattern)] })
        if !state.queriedRows.isEmpty {
            a.set("queried", words: state.queriedRows.map { UInt64(bitPattern: Int64($0)) })
        }
        return a.encoded()
    }

    static func decode(_ bytes: [UInt8], space: any SearchSpace, name: String) throws -> SearchState {
        let a = try Archive(decoding: bytes)
        guard let format = try a.words("format").first, format == formatVersion else {
            throw CheckpointError(message: "\(name) has checkpoint format \((try? a.words("format").first).flatMap { $0 }.map(String.init) ?? "?"), this build reads format \(formatVersion); it cannot be resumed by this version")
        }
        let spaceName = String(decoding: try a.bytes("space"), as: UTF8.self)
        let table = String(decoding: try a.bytes("table"), as: UTF8.self)
        guard spaceName == space.name, table == space.tableFingerprint else {
            throw CheckpointError(message: "\(name) was made with another data table (\(spaceName), table fingerprint \(table.prefix(12))…) than the one loaded (\(space.name), \(space.tableFingerprint.prefix(12))…); refusing to resume")
        }
        let options = try JSONDecoder().decode(SearchOptions.self, from: Data(try a.bytes("options")))
        var state = SearchState(space: space, options: options)
        let c = try a.words("counters")
        let d = try a.words("doubles")
        guard c.count == 11, d.count == 4, let phase = [SearchPhase.pretraining, .searching, .finished][safe: Int(c[0])] else {
            throw EngineError.corrupt("checkpoint counters")
        }
        state.phase = phase
        state.epoch = Int(c[1]); state.iteration = Int(c[2])
        state.comparatorVersion = c[3]; state.controllerVersion = c[4]
        state.baselineRow = Int(Int64(bitPattern: c[5])); state.bestRow = Int(Int64(bitPattern: c[6]))
        state.eventCount = Int(c[7]); state.summaryCount = Int(c[8])
        state.lastTau = Double(bitPattern: d[0]); state.summaryReward = Double(bitPattern: d[1])
        state.summaryEntropy = Double(bitPattern: d[2]); state.summaryLogProbability = Double(bitPattern: d[3])
        guard let generator = SeededGenerator(state: try a.words("generator")) else { throw EngineError.corrupt("generator state") }
        state.generator = generator
        state.comparator = try ArchitectureComparator(configuration: space.comparatorConfiguration, parameters: try a.floats("comparator"))
        state.comparatorOptimizer = try Adam(settings: state.comparatorOptimizer.settings, step: Int(c[9]),
                                             firstMoment: try a.floats("comparator.m"), secondMoment: try a.floats("comparator.v"))
        state.controller = try Controller(grammar: space.grammar, parameters: try a.floats("controller"))
        state.controllerOptimizer = try Adam(settings: state.controllerOptimizer.settings, step: Int(c[10]),
                                             firstMoment: try a.floats("controller.m"), secondMoment: try a.floats("controller.v"))
        guard state.comparatorOptimizer.firstMoment.count == state.comparator.parameters.count,
              state.controllerOptimizer.firstMoment.count == state.controller.parameters.count else {
            throw EngineError.corrupt("optimiser moments do not match the parameters")
        }
        let pseudo = try a.words("pseudo")
        guard pseudo.count % 3 == 0 else { throw EngineError.corrupt("pseudo-label pool") }
        state.pseudoPool = stride(from: 0, to: pseudo.count, by: 3).map {
            PseudoPair(first: Int(Int64(bitPattern: pseudo[$0])), second: Int(Int64(bitPattern: pseudo[$0 + 1])),
                       label: Float(bitPattern: UInt32(truncatingIfNeeded: pseudo[$0 + 2])))
        }
        state.queriedRows = try a.has("queried") ? a.words("queried").map { Int(Int64(bitPattern: $0)) } : []
        let rows = 0..<space.cellCount
        guard state.queriedRows.allSatisfy({ rows.contains($0) }), state.queriedRows.count <= options.searchQueries,
              state.pseudoPool.allSatisfy({ rows.contains($0.first) && rows.contains($0.second) }),
              state.phase == .pretraining || (rows.contains(state.baselineRow) && rows.contains(state.bestRow)) else {
            throw EngineError.corrupt("checkpoint names rows outside the table")
        }
        return state
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

/// Test hook: `CTNAS_FAULT_KILL_AT=point:n` kills this process with SIGKILL the n-th time it
/// reaches `point`, so tests can crash a coordinator at an exact place (mid checkpoint write,
/// mid baseline update, …) and check that resuming loses nothing.
public enum FaultInjection {
    nonisolated(unsafe) static var counts: [String: Int] = [:]
    static let target: (point: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["CTNAS_FAULT_KILL_AT"] else { return nil }
        let parts = spec.split(separator: ":")
        guard parts.count == 2, let n = Int(parts[1]) else { return nil }
        return (String(parts[0]), n)
    }()

    public static func reached(_ point: String) {
        guard let target, target.point == point else { return }
        counts[point, default: 0] += 1
        if counts[point] == target.count { kill(getpid(), SIGKILL) }
    }
}
