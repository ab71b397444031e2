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

    static let defaultNASBench201 = "../shared/data/nasbench201-test.csv"
    static let defaultNASBench201Valid = "../shared/data/nasbench201-cifar10-valid.csv"

    /// Which space and tables a command works on, as options or a run manifest give them.
    struct Choice: Equatable {
        var space = "nasbench101"
        var data: String?
        var dataset: String?
        var validationData: String?

        static let options: [OptionSpec] = [
            .value("--space", "NAME", "nasbench101", "search space: nasbench101 or nasbench201"),
            .value("--data", "PATH", "the space's table in ../shared/data", "benchmark table (nasbench101.csv.gz, nas_bench.json, nasbench201-test.csv)"),
            .value("--dataset", "NAME", "cifar10", "nasbench201 only: cifar10, cifar100 or imagenet16"),
            .value("--validation-data", "PATH", DataLocation.defaultNASBench201Valid, "nasbench201 with cifar10: the cifar10-valid table whose validation accuracy is queried"),
        ]

        init(space: String, data: String?, dataset: String?, validationData: String?) {
            self.space = space; self.data = data; self.dataset = dataset; self.validationData = validationData
        }

        init(_ args: ParsedArguments) throws {
            space = args.string("--space") ?? "nasbench101"
            guard ["nasbench101", "nasbench201"].contains(space) else { throw UsageError(message: "option --space expects nasbench101 or nasbench201") }
            data = args.given("--data") ? args.string("--data") : nil
            if space == "nasbench201" {
                dataset = args.string("--dataset") ?? "cifar10"
                guard NASBench201Table.Dataset(rawValue: dataset!) != nil else {
                    throw UsageError(message: "option --dataset expects cifar10, cifar100 or imagenet16")
                }
                if dataset == "cifar10" {
                    validationData = args.given("--validation-data") ? args.string("--validation-data") : DataLocation.defaultNASBench201Valid
                }
            } else if args.given("--dataset") || args.given("--validation-data") {
                throw UsageError(message: "--dataset and --validation-data apply to --space nasbench201")
            }
        }

        /// Paths made absolute, so a run folder can be resumed from anywhere.
        var resolved: Choice {
            func absolute(_ p: String?) -> String? { p.map { URL(fileURLWithPath: $0).standardizedFileURL.path } }
            let table = data ?? (space == "nasbench201" ? DataLocation.defaultNASBench201 : DataLocation.defaultNASBench101)
            return Choice(space: space, data: absolute(table), dataset: dataset, validationData: absolute(validationData))
        }

        var defaultQueries: Int { space == "nasbench201" ? 100 : 423 }

        func load() throws -> (any SearchSpace, seconds: Double) {
            let start = Date()
            if space == "nasbench201" {
                let path = data ?? DataLocation.defaultNASBench201
                for p in [path] + (validationData.map { [$0] } ?? []) where !FileManager.default.fileExists(atPath: p) {
                    throw UsageError(message: "no NAS-Bench-201 table at \(p); pass --data PATH (and --validation-data PATH) (see README, 'Data')")
                }
                let s = try NASBench201Space.load(testTable: path, validTable: validationData,
                                                  dataset: NASBench201Table.Dataset(rawValue: dataset ?? "cifar10")!)
                return (s, Date().timeIntervalSince(start))
            }
            let (s, seconds) = try DataLocation.loadSpace(data)
            return (s, seconds)
        }
    }

    static func loadSpace(_ given: String?) throws -> (NASBench101Space, seconds: Double) {
        let path = try nasBench101(given)
        let start = Date()
        let table = try NASBench101Table.load(path: path)
        return (NASBench101Space(table: table), Date().timeIntervalSince(start))
    }
}
