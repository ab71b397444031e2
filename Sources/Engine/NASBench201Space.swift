extension ArchitectureComparator.Configuration {
    /// The comparator for NAS-Bench-201's 8-node "ops on nodes" encoding: op ids padding,
    /// input, the five edge ops, output.
    public static let nasBench201 = ArchitectureComparator.Configuration(opCount: 8, maxNodes: 8, embeddingDimension: 128, layers: 4)
}

/// NAS-Bench-201 through the same search loop: 6 op decisions build one of the 15,625 cells;
/// the comparator sees the 8-node encoding of `NASBench201Cell.graphEncoding`.
///
/// The search queries `label` and reports `testAccuracy`: on CIFAR-10 with the cifar10-valid
/// table given, the label is that setting's validation accuracy (query validation, report
/// test, as NAS-Bench-201 intends); otherwise label and test accuracy are the same column.
public struct NASBench201Space: SearchSpace {
    public typealias Dataset = NASBench201Table.Dataset

    public static let comparatorConfiguration = ArchitectureComparator.Configuration.nasBench201

    public let table: NASBench201Table
    public let dataset: Dataset
    public let grammar: any DecisionGrammar = NASBench201Grammar()
    public let tableFingerprint: String
    private let testAccuracies: [Float]
    private let labels: [Float]
    private let ranks: [Int32]

    public init(table: NASBench201Table, dataset: Dataset) {
        self.table = table
        self.dataset = dataset
        let tests = table.testAccuracies(dataset: dataset)
        let useValidation = dataset == .cifar10 && table.hasValidationAccuracy
        testAccuracies = tests
        labels = useValidation ? (0..<table.count).map { table.cifar10ValidAccuracy(at: $0)! } : tests
        let order = tests.indices.sorted { a, b in tests[a] != tests[b] ? tests[a] > tests[b] : a < b }
        var ranks = [Int32](repeating: 0, count: order.count)
        for (position, row) in order.enumerated() { ranks[row] = Int32(position + 1) }
        self.ranks = ranks
        tableFingerprint = Self.fingerprint(table: table, dataset: dataset, labelsAreValidation: useValidation,
                                            tests: tests, labels: labels)
    }

    /// Loads the tables (see `NASBench201Table.load`) and picks the dataset.
    public static func load(testTable: String, validTable: String?, dataset: Dataset) throws -> NASBench201Space {
        NASBench201Space(table: try NASBench201Table.load(testTable: testTable, validTable: validTable), dataset: dataset)
    }

    /// Whether `label` is cifar10-valid validation accuracy rather than the test column.
    public var labelsAreValidationAccuracy: Bool { dataset == .cifar10 && table.hasValidationAccuracy }

    public var name: String { "nasbench201-\(dataset.rawValue)" }
    public var comparatorConfiguration: ArchitectureComparator.Configuration { Self.comparatorConfiguration }
    public var cellCount: Int { table.count }
    public func encoding(ofRow row: Int) -> GraphEncoding { table.cell(at: row).graphEncoding }
    public func label(ofRow row: Int) -> Float { labels[row] }
    public func testAccuracy(ofRow row: Int) -> Float { testAccuracies[row] }
    public var labelNote: String {
        labelsAreValidationAccuracy
            ? "labels are cifar10-valid validation accuracy; reported accuracies CIFAR-10 test accuracy (NAS-Bench-201, mean over seeds)"
            : "labels and reported accuracies are \(dataset.rawValue) test accuracy (NAS-Bench-201, mean over seeds)"
    }
    /// 1 is the highest test accuracy on the dataset; equal accuracies rank in row order.
    public func rank(ofRow row: Int) -> Int { Int(ranks[row]) }

    public func describe(row: Int) -> CellDescription {
        let cell = table.cell(at: row)
        return CellDescription(hash: cell.architectureString, ops: cell.ops.map(\.name), matrix: cell.nodeMatrix)
    }

    public func row(forSequence sequence: [UInt16]) -> Int? {
        guard let cell = Self.cell(forSequence: sequence) else { return nil }
        return table.index(of: cell)
    }

    public static func cell(forSequence sequence: [UInt16]) -> NASBench201Cell? {
        NASBench201Grammar.cell(forSequence: sequence)
    }

    /// The original CTNAS split: a seeded permutation of all rows, whose first `train` rows are
    /// the labelled training cells and the next `validation` the validation cells.
    public func split(seed: UInt64, train: Int, validation: Int) -> (train: [Int], validation: [Int]) {
        precondition(train >= 0 && validation >= 0 && train + validation <= cellCount,
                     "split of \(train) + \(validation) rows from a table of \(cellCount)")
        var generator = SeededGenerator(seed: seed)
        let order = generator.permutation(cellCount)
        return (Array(order[0..<train]), Array(order[train..<(train + validation)]))
    }

    /// SHA-256 over what a search depends on: the dataset, which label column, and per row the
    /// cell, test accuracy and label, in fixed byte order.
    private static func fingerprint(table: NASBench201Table, dataset: Dataset, labelsAreValidation: Bool,
                                    tests: [Float], labels: [Float]) -> String {
        var hasher = SHA256Hasher()
        hasher.update(Array("nasbench201 \(dataset.rawValue) label=\(labelsAreValidation ? "cifar10-valid" : "test")\n".utf8))
        var bytes = [UInt8]()
        bytes.reserveCapacity(8 + table.count * 10)
        func append(_ word: UInt64, bytes count: Int) {
            for shift in stride(from: 8 * (count - 1), through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        append(UInt64(table.count), bytes: 8)
        for row in 0..<table.count {
            append(UInt64(table.cell(at: row).index), bytes: 2)
            append(UInt64(tests[row].bitPattern), bytes: 4)
            append(UInt64(labels[row].bitPattern), bytes: 4)
        }
        hasher.update(bytes)
        return Digest.hex(hasher.finalize())
    }
}
