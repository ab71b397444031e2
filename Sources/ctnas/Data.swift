import Foundation
import Engine

/// Where tables are found: the path the user gives, else the shared data folder beside the checkout.
enum DataLocation {
    static let defaultNASBench101 = "../shared/data/nasbench101.csv.gz"

    static func nasBench101(_ given: String?) throws -> String {
        let path = given ?? defaultNASBench101
        guard FileManager.default.fileExists(atPath: path) else {
            if given == nil {
                throw UsageError(message: "no NAS-Bench-101 table at \(defaultNASBench101); pass --data PATH to a nasbench101.csv.gz or the original CTNAS nas_bench.json (see README, 'Data')")
            }
            throw UsageError(message: "no such file: \(path)")
        }
        return path
    }

    static func loadSpace(_ given: String?) throws -> (NASBench101Space, seconds: Double) {
        let path = try nasBench101(given)
        let start = Date()
        let table = try NASBench101Table.load(path: path)
        return (NASBench101Space(table: table), Date().timeIntervalSince(start))
    }
}

func jsonLine(_ fields: [(String, Any)]) -> String {
    "{" + fields.map { key, value -> String in
        let v: String
        switch value {
        case let s as String: v = "\"\(s)\""
        case let d as Double: v = d.isFinite ? "\(d)" : "null"
        default: v = "\(value)"
        }
        return "\"\(key)\":\(v)"
    }.joined(separator: ",") + "}"
}
