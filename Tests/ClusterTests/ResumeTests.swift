import XCTest
import Foundation
@testable import Coordinator
import Engine
import Worker

/// Kill the coordinator with SIGKILL at exact points (fault injection), resume, and compare
/// with a run that was never interrupted.
final class ResumeTests: XCTestCase {
    static let schedule = ["--seed", "6", "--queries", "60", "--comparator-epochs", "20", "--iterations", "240",
                           "--baseline-every", "50", "--explore-every", "40", "--search-queries", "8", "--shards", "4", "--checkpoint-every", "30",
                           "--workers", "2", "--quiet"]

    func run(_ arguments: [String], fault: String? = nil) throws -> Process {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CTNAS_FAULT_KILL_AT"] = fault
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p
    }

    func searchEvents(_ dir: URL) throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.contains("\"worker_") }
    }

    func testKilledCoordinatorResumesToTheSameDigestFromFivePoints() throws {
        _ = try SharedTable.space()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-resume-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let reference = root.appendingPathComponent("reference")
        let clean = try run(["search", "--data", SharedTable.path, "--output", reference.path] + Self.schedule)
        XCTAssertEqual(clean.terminationStatus, 0)
        let expected = try digest(reference)
        let expectedEvents = try searchEvents(reference)

        for fault in ["pretraining-epoch:12", "iteration:77", "baseline-update:3", "checkpoint-write:4", "checkpoint-written:3"] {
            let dir = root.appendingPathComponent(fault.replacingOccurrences(of: ":", with: "-"))
            let killed = try run(["search", "--data", SharedTable.path, "--output", dir.path] + Self.schedule, fault: fault)
            XCTAssertEqual(killed.terminationReason, .uncaughtSignal, "\(fault): the fault did not fire")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("result.json").path))
            let resumed = try run(["search", "--resume", dir.path, "--quiet"])
            XCTAssertEqual(resumed.terminationStatus, 0, fault)
            XCTAssertEqual(try digest(dir), expected, "\(fault): resumed run differs")
            XCTAssertEqual(try searchEvents(dir), expectedEvents, "\(fault): metrics.jsonl has duplicated or missing events")
        }
    }

    func testRunKilledBeforeItsFirstCheckpointResumesFromTheStart() throws {
        _ = try SharedTable.space()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-early-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let killed = try run(["search", "--data", SharedTable.path, "--output", dir.path] + Self.schedule, fault: "pretraining-epoch:2")
        XCTAssertEqual(killed.terminationReason, .uncaughtSignal)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run.json").path))
        XCTAssertEqual(try run(["search", "--resume", dir.path]).terminationStatus, 0)
        XCTAssertNotNil(try? digest(dir))
    }

    func testSigtermWritesACheckpointAndExitsZero() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        _ = try SharedTable.space()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-term-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        var schedule = Self.schedule
        schedule[schedule.firstIndex(of: "--iterations")! + 1] = "5000"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["search", "--data", SharedTable.path, "--output", dir.path] + schedule
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8),
               text.contains("\"search_started\"") { break }
            usleep(20_000)
        }
        let before = CheckpointStore(directory: dir).existing().count
        p.terminate()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertGreaterThan(CheckpointStore(directory: dir).existing().count + 1, before)
        let state = try XCTUnwrap(CheckpointStore(directory: dir).loadNewest(space: try SharedTable.space(), warn: { _ in }))
        XCTAssertEqual(state.phase, .searching)
        XCTAssertLessThan(state.iteration, 5000)
    }

    /// Worker processes keep running while the coordinator is killed and resumed, and rejoin it.
    func testRemoteWorkersRejoinAResumedCoordinator() throws {
        guard let binary = ProcessClusterTests.binary else { throw XCTSkip("ctnas executable not built beside the tests") }
        _ = try SharedTable.space()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-rejoin-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        var schedule = Self.schedule
        schedule.removeSubrange(schedule.firstIndex(of: "--workers")!...(schedule.firstIndex(of: "--workers")! + 1))
        let reference = root.appendingPathComponent("reference"), dir = root.appendingPathComponent("cluster")
        XCTAssertEqual(try run(["search", "--workers", "1", "--data", SharedTable.path, "--output", reference.path] + schedule).terminationStatus, 0)

        let endpoint = "tcp://127.0.0.1:\(try ProcessClusterTests.freePort())"
        let workers = try (0..<2).map { k -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["worker", "--connect", endpoint, "--id", "survivor-\(k)"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        let killed = try run(["coordinator", "--listen", endpoint, "--min-workers", "2", "--data", SharedTable.path,
                              "--output", dir.path] + schedule, fault: "iteration:90")
        XCTAssertEqual(killed.terminationReason, .uncaughtSignal)
        XCTAssertTrue(workers.allSatisfy(\.isRunning), "workers must outlive the coordinator")
        let resumed = try run(["coordinator", "--resume", dir.path, "--quiet"])
        XCTAssertEqual(resumed.terminationStatus, 0)
        XCTAssertEqual(try digest(dir), try digest(reference))
        let deadline = Date().addingTimeInterval(30)
        while workers.contains(where: \.isRunning) && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(workers.contains(where: \.isRunning), "workers should stand down when the resumed search ends")
    }

    func digest(_ dir: URL) throws -> String {
        let text = try String(contentsOf: dir.appendingPathComponent("result.json"), encoding: .utf8)
        return try XCTUnwrap(JSON.parse(text)["state_digest"]?.stringValue)
    }
}

/// The same table under another fingerprint, to stand for "a checkpoint from another table".
struct RelabelledSpace: SearchSpace {
    let base: NASBench101Space
    var name: String { base.name }
    var comparatorConfiguration: ArchitectureComparator.Configuration { base.comparatorConfiguration }
    var grammar: any DecisionGrammar { base.grammar }
    var cellCount: Int { base.cellCount }
    var tableFingerprint: String { "0000" + base.tableFingerprint.dropFirst(4) }
    func encoding(ofRow row: Int) -> GraphEncoding { base.encoding(ofRow: row) }
    func label(ofRow row: Int) -> Float { base.label(ofRow: row) }
    func testAccuracy(ofRow row: Int) -> Float { base.testAccuracy(ofRow: row) }
    var labelNote: String { base.labelNote }
    func rank(ofRow row: Int) -> Int { base.rank(ofRow: row) }
    func describe(row: Int) -> CellDescription { base.describe(row: row) }
    func row(forSequence sequence: [UInt16]) -> Int? { base.row(forSequence: sequence) }
    func split(seed: UInt64, train: Int, validation: Int) -> (train: [Int], validation: [Int]) { base.split(seed: seed, train: train, validation: validation) }
}

final class CheckpointStoreTests: XCTestCase {
    func advancedState(_ space: NASBench101Space, steps: Int) throws -> SearchState {
        let search = Search(space: space, state: SearchState(space: space, options: tinyOptions()),
                            runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        for _ in 0..<steps { _ = try search.step() }
        return search.state
    }

    func temporaryDirectory(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctnas-\(name)-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testRoundTripContinuesIdentically() throws {
        let space = try SharedTable.space()
        let dir = try temporaryDirectory("roundtrip")
        let state = try advancedState(space, steps: 6)
        let store = CheckpointStore(directory: dir)
        try store.save(state, space: space)
        let restored = try XCTUnwrap(try store.loadNewest(space: space, warn: { _ in }))
        XCTAssertEqual(restored.digest, state.digest)
        XCTAssertEqual(restored.generator, state.generator)
        XCTAssertEqual(restored.comparatorOptimizer, state.comparatorOptimizer)
        XCTAssertEqual(restored.pseudoPool, state.pseudoPool)
        let a = Search(space: space, state: state, runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        let b = Search(space: space, state: restored, runner: DirectRunner(executor: JobExecutor(space: space))) { _ in }
        try a.runToEnd(); try b.runToEnd()
        XCTAssertEqual(a.state.digest, b.state.digest)
    }

    func testKeepsTheNewestTwoAndFallsBackFromACorruptOne() throws {
        let space = try SharedTable.space()
        let dir = try temporaryDirectory("fallback")
        let store = CheckpointStore(directory: dir)
        let early = try advancedState(space, steps: 4)
        let late = try advancedState(space, steps: 7)
        try store.save(early, space: space)
        try store.save(early, space: space)
        try store.save(late, space: space)
        XCTAssertEqual(store.existing().map(\.sequence), [2, 3])
        // Flip a byte in the middle of the newest.
        let newest = store.existing().last!.url
        var bytes = try Data(contentsOf: newest)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: newest)
        var warnings = [String]()
        let restored = try XCTUnwrap(try store.loadNewest(space: space, warn: { warnings.append($0) }))
        XCTAssertEqual(restored.digest, early.digest)
        XCTAssertEqual(warnings.count, 1)
        XCTAssert(warnings[0].contains("damaged"), warnings[0])
        // A truncated one too.
        try Data(bytes.prefix(100)).write(to: newest)
        XCTAssertEqual(try store.loadNewest(space: space, warn: { _ in })?.digest, early.digest)
    }

    func testCheckpointFromAnotherTableIsRefused() throws {
        let space = try SharedTable.space()
        let dir = try temporaryDirectory("table")
        let store = CheckpointStore(directory: dir)
        try store.save(try advancedState(space, steps: 2), space: space)
        XCTAssertThrowsError(try store.loadNewest(space: RelabelledSpace(base: space), warn: { _ in })) { error in
            XCTAssert("\(error)".contains("another data table"), "\(error)")
        }
    }

    func testOtherFormatVersionIsRefused() throws {
        let space = try SharedTable.space()
        let dir = try temporaryDirectory("format")
        var archive = try Archive(decoding: CheckpointStore.encode(try advancedState(space, steps: 2), space: space))
        archive.set("format", words: [99])
        try Data(archive.encoded()).write(to: dir.appendingPathComponent("checkpoint-00000001.ctnas"))
        XCTAssertThrowsError(try CheckpointStore(directory: dir).loadNewest(space: space, warn: { _ in })) { error in
            XCTAssert("\(error)".contains("format 99"), "\(error)")
        }
    }

    /// A full disk and a read-only folder: a tiny tmpfs mounted for the test (needs root).
    func testFullOrReadOnlyDiskGivesAClearErrorAndKeepsThePreviousCheckpoint() throws {
        let space = try SharedTable.space()
        let dir = try temporaryDirectory("disk")
        guard getuid() == 0, shell("mount -t tmpfs -o size=2m tmpfs '\(dir.path)'") == 0 else {
            throw XCTSkip("needs root to mount a small tmpfs")
        }
        defer { _ = shell("umount '\(dir.path)'") }
        let store = CheckpointStore(directory: dir)
        let state = try advancedState(space, steps: 3)
        try store.save(state, space: space)   // ~1.4 MB fits
        XCTAssertThrowsError(try store.save(state, space: space)) { error in
            XCTAssert("\(error)".contains("No space left on device"), "\(error)")
            XCTAssert("\(error)".contains("previous checkpoint is intact"), "\(error)")
        }
        XCTAssertEqual(try store.loadNewest(space: space, warn: { _ in })?.digest, state.digest)
        XCTAssertEqual(shell("mount -o remount,ro '\(dir.path)'"), 0)
        XCTAssertThrowsError(try store.save(state, space: space)) { error in
            XCTAssert("\(error)".contains("Read-only file system"), "\(error)")
        }
        XCTAssertEqual(try store.loadNewest(space: space, warn: { _ in })?.digest, state.digest)
    }

    func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
