/// What the search loop knows of a search space: a table of cells it can look up by row, how
/// the comparator sees a cell, and how controller decisions become a cell. Adding a space means
/// conforming to this; the search loop does not change.
public protocol SearchSpace: Sendable {
    var name: String { get }
    var comparatorConfiguration: ArchitectureComparator.Configuration { get }
    var grammar: any DecisionGrammar { get }
    /// Rows of the benchmark table.
    var cellCount: Int { get }
    /// SHA-256 over the table's content; checkpoints compare it to refuse another table.
    var tableFingerprint: String { get }
    func encoding(ofRow row: Int) -> GraphEncoding
    /// The accuracy a search may query for a labelled cell.
    func label(ofRow row: Int) -> Float
    /// The accuracy reported for a pick.
    func testAccuracy(ofRow row: Int) -> Float
    /// What `label` and `testAccuracy` are, in words, for results to carry.
    var labelNote: String { get }
    /// 1 for the table's best cell by test accuracy.
    func rank(ofRow row: Int) -> Int
    func describe(row: Int) -> CellDescription
    /// The table row of the cell a decision sequence builds, or nil when it is not in the table.
    func row(forSequence sequence: [UInt16]) -> Int?
    /// The original code's split: a seeded permutation, first `train` rows labelled, next `validation` held out.
    func split(seed: UInt64, train: Int, validation: Int) -> (train: [Int], validation: [Int])
}

extension SearchSpace {
    public func percentile(ofRow row: Int) -> Double { 100 * Double(rank(ofRow: row)) / Double(cellCount) }
}

/// A cell as results report it.
public struct CellDescription: Sendable, Equatable {
    public var hash: String
    public var ops: [String]
    public var matrix: [[Int]]
}

/// NAS-Bench-101 through the original CTNAS controller and comparator encoding.
public struct NASBench101Space: SearchSpace {
    public let table: NASBench101Table
    public let grammar: any DecisionGrammar = NASBench101Grammar()

    public init(table: NASBench101Table) { self.table = table }

    public var name: String { "nasbench101" }
    public var comparatorConfiguration: ArchitectureComparator.Configuration { .nasBench101 }
    public var cellCount: Int { table.count }
    public var tableFingerprint: String { table.contentFingerprint }
    public func encoding(ofRow row: Int) -> GraphEncoding { table.cell(at: row).graphEncoding }
    public func label(ofRow row: Int) -> Float { table.label(at: row) }
    public func testAccuracy(ofRow row: Int) -> Float { table.testAccuracy(at: row) }
    public var labelNote: String {
        table.hasValidationAccuracy
            ? "labels are the file's validation accuracy; reported accuracies its test accuracy"
            : "labels and reported accuracies are the table's test accuracy (NAS-Bench-101: training run 0 of 3)"
    }
    public func rank(ofRow row: Int) -> Int { table.rank(at: row) }

    public func describe(row: Int) -> CellDescription {
        let cell = table.cell(at: row)
        let n = cell.vertexCount
        return CellDescription(hash: table.hash(at: row), ops: cell.ops.map(\.name),
                               matrix: (0..<n).map { i in (0..<n).map { Int(cell.adjacency[i * n + $0]) } })
    }

    public func row(forSequence sequence: [UInt16]) -> Int? {
        guard let cell = Self.cell(forSequence: sequence) else { return nil }
        return table.index(of: cell)
    }

    public func split(seed: UInt64, train: Int, validation: Int) -> (train: [Int], validation: [Int]) {
        table.split(seed: seed, trainCount: train, validationCount: validation)
    }

    /// The original `nasbench_seq2arch`: node i+1 takes an edge from its chosen predecessor and
    /// op VALID_OPERATIONS[choice]; the output takes one from its predecessor; each remaining pair
    /// of ends adds an edge from the smaller to the larger (equal ends add nothing); then pruning.
    public static func cell(forSequence sequence: [UInt16]) -> NASBench101Cell? {
        guard let first = sequence.first else { return nil }
        let n = Int(first) + 1
        let size = n + 2
        guard sequence.count >= 2 * n + 2 else { return nil }
        let opsByChoice: [NASBench101Op] = [.conv3x3, .conv1x1, .maxpool3x3]
        var adjacency = [UInt8](repeating: 0, count: size * size)
        var ops: [NASBench101Op] = [.input]
        for node in 1...n {
            let from = Int(sequence[2 * node - 1]), op = Int(sequence[2 * node])
            guard from < node, op < opsByChoice.count else { return nil }
            adjacency[from * size + node] = 1
            ops.append(opsByChoice[op])
        }
        let outputFrom = Int(sequence[2 * n + 1])
        guard outputFrom < size - 1 else { return nil }
        adjacency[outputFrom * size + size - 1] = 1
        var k = 2 * n + 2
        while k + 1 < sequence.count {
            let a = Int(sequence[k]), b = Int(sequence[k + 1])
            k += 2
            guard a < size, b < size else { return nil }
            if a != b { adjacency[min(a, b) * size + max(a, b)] = 1 }
        }
        ops.append(.output)
        return try? NASBench101Cell.pruning(adjacency: adjacency, ops: ops)
    }
}
