import Foundation
import Engine
import Coordinator

enum Rank {
    static let spec = CommandSpec(name: "rank", summary: "Score every cell of a table against a search's baseline on the cluster; write the top K and the comparator's tau over the table.", options: DataLocation.Choice.options + [
        .value("--checkpoint", "DIR", nil, "run folder whose newest checkpoint gives the comparator and baseline (required)"),
        .value("--top", "K", "20", "cells to list"),
        .value("--workers", "N", "number of cores", "worker threads in this process"),
        .value("--listen", "ENDPOINT", nil, "also accept remote workers, e.g. tcp://127.0.0.1:5556"),
        .value("--output", "FILE", "DIR/rank.json", "where to write the ranking"),
    ])

    static func run(_ args: ParsedArguments) throws -> Int32 {
        guard let dir = args.string("--checkpoint") else { throw UsageError(message: "option --checkpoint is required") }
        let top = try args.int("--top", in: 1...1_000_000)!
        let workers = try args.given("--workers") ? args.int("--workers", in: 0...1024)! : ProcessInfo.processInfo.activeProcessorCount
        if workers == 0 && args.string("--listen") == nil { throw UsageError(message: "--workers 0 needs --listen for remote workers") }
        let (space, _) = try DataLocation.Choice(args).load()
        let store = CheckpointStore(directory: URL(fileURLWithPath: dir))
        guard let state = try store.loadNewest(space: space, warn: { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }) else {
            throw UsageError(message: "\(dir) holds no checkpoint")
        }
        guard state.phase != .pretraining else { throw UsageError(message: "\(dir) has not reached the search phase: there is no baseline yet") }
        let cluster = try ClusterSetup(space: space, listen: args.string("--listen"), localWorkers: workers) { _ in }
        defer { cluster.shutdown() }
        try cluster.runner.waitForWorkers(count: max(1, workers), timeout: .seconds(workers > 0 ? 60 : 86_400))
        let ranking = try TableRanking(space: space, comparator: state.comparator, version: state.comparatorVersion,
                                       reference: state.baselineRow, nodeWidths: state.options.nodeWidths, runner: cluster.runner)
        let entries = ranking.top(top)
        let json = JSON.object([
            ("space", .string(space.name)), ("cells", .int(space.cellCount)),
            ("baseline", .object([("hash", .string(space.describe(row: state.baselineRow).hash)),
                                  ("test_accuracy", .number(Double(space.testAccuracy(ofRow: state.baselineRow)))),
                                  ("rank", .int(space.rank(ofRow: state.baselineRow)))])),
            ("kendall_tau", .number(ranking.kendallTau)),
            ("seconds", .number(ranking.seconds)),
            ("cells_per_second", .number(Double(space.cellCount) / ranking.seconds)),
            ("top", .array(entries.map { e -> JSON in .object([
                ("hash", .string(space.describe(row: e.row).hash)), ("probability", .number(Double(e.probability))),
                ("test_accuracy", .number(Double(space.testAccuracy(ofRow: e.row)))), ("rank", .int(space.rank(ofRow: e.row)))]) })),
        ])
        let output = args.given("--output") ? args.string("--output")! : dir + "/rank.json"
        try Data((json.serialized(pretty: true) + "\n").utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        print(String(format: "scored %d cells in %.1f s (%.0f cells/s); kendall tau over the table %.4f", space.cellCount, ranking.seconds,
                     Double(space.cellCount) / ranking.seconds, ranking.kendallTau))
        for (k, e) in entries.enumerated() {
            print(String(format: "%4d  %@  p %.4f  test accuracy %.4f  rank %d", k + 1, space.describe(row: e.row).hash, e.probability,
                         space.testAccuracy(ofRow: e.row), space.rank(ofRow: e.row)))
        }
        print("wrote \(output)")
        return 0
    }
}
