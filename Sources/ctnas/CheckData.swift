import Foundation
import Dispatch
import Engine

enum CheckData {
    static let spec = CommandSpec(name: "check-data", summary: "Re-derive every cell's NAS-Bench-101 hash and parameter count and report how many rows match.", options: [
        .value("--data", "PATH", DataLocation.defaultNASBench101, "table to check (.csv.gz, .csv or nas_bench.json)"),
        .value("--threads", "N", "2", "threads hashing in parallel"),
    ])

    static func run(_ args: ParsedArguments) throws -> Int32 {
        let path = try DataLocation.nasBench101(args.string("--data"))
        let threads = try args.int("--threads", in: 1...256)!
        let start = Date()
        let table = try NASBench101Table.load(path: path)
        let loaded = Date().timeIntervalSince(start)
        let lanes = min(threads, max(table.count, 1))
        let mismatches = Mismatches()
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            let range = (lane * table.count / lanes)..<((lane + 1) * table.count / lanes)
            mismatches.add(table.verifyFingerprints(range: range))
            mismatches.addParameters(range.filter { row in
                table.trainableParameters(at: row).map { $0 != table.cell(at: row).trainableParameters } ?? false
            })
        }
        let bad = mismatches.rows.sorted()
        print("\(path): \(table.count - bad.count) of \(table.count) rows match their hash (loaded in \(String(format: "%.2f", loaded)) s, checked in \(String(format: "%.1f", Date().timeIntervalSince(start) - loaded)) s)")
        for row in bad.prefix(10) { print("  row \(row): stored \(table.hash(at: row)), derived \(table.cell(at: row).fingerprint)") }
        let badParameters = mismatches.parameterRows.sorted()
        if table.trainableParameters(at: 0) != nil {
            print("\(table.count - badParameters.count) of \(table.count) rows match their parameter count (the channel split the comparator's node widths use)")
            for row in badParameters.prefix(10) {
                print("  row \(row): stored \(table.trainableParameters(at: row)!), derived \(table.cell(at: row).trainableParameters)")
            }
        }
        return bad.isEmpty && badParameters.isEmpty ? 0 : 1
    }

    private final class Mismatches: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var rows: [Int] = []
        private(set) var parameterRows: [Int] = []
        func add(_ r: [Int]) { lock.lock(); rows += r; lock.unlock() }
        func addParameters(_ r: [Int]) { lock.lock(); parameterRows += r; lock.unlock() }
    }
}
