import Foundation
import XCTest
@testable import Engine

/// Rows copied verbatim from /work/shared/data (the first rows of each file and the best cell).
private enum Rows201 {
    static let testHeader = "CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString"
    static let test0 = "85.86333333333334,52.913333294677734,26.6333332739936,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,(0)@avg_pool_3x3+(0)@avg_pool_3x3+(0)@nor_conv_1x1+(0)@nor_conv_1x1"
    static let test1 = "93.66000000000001,70.29333326822916,44.03333332316081,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3+((0)@nor_conv_3x3)@nor_conv_3x3+0"
    static let validHeader = "index,sol,name,C,N,arch_str,num_classes,index2,train-loss,train-accuracy,train-per-time,train-all-time,valid-loss,valid-accuracy,valid-per-time,valid-all-time,test-loss,test-accuracy,test-per-time,test-all-time"
    static let valid0 = "0,532322,infer.tiny,16,5,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,10,0,0.319028123,88.91866666,7.221092999,1444.2186,0.565850776,81.98266666,2.548979237,509.7958474,0.576099647,81.52,1.019591695,203.918339"
    static let valid1 = "1,445242,infer.tiny,16,5,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,10,1,0.001767178,99.98533333,10.84820688,2169.641376,0.438929597,90.76933332,3.754198977,750.8397954,0.457183462,90.51333333,1.501679591,300.3359182"
    static let best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
}

final class NASBench201Tests: XCTestCase {
    // MARK: Cells

    func testOpNamesOrderAndComparatorIds() {
        XCTAssertEqual(NASBench201Op.allCases.map(\.name),
                       ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"])
        XCTAssertEqual(NASBench201Op.allCases.map(\.comparatorID), [2, 3, 4, 5, 6])
        for op in NASBench201Op.allCases { XCTAssertEqual(NASBench201Op(name: op.name), op) }
        XCTAssertNil(NASBench201Op(name: "nor_conv_5x5"))
    }

    func testArchitectureStringRoundTrip() throws {
        let cell = try NASBench201Cell(parsing: Rows201.best)
        XCTAssertEqual(cell.ops, [.conv3x3, .conv3x3, .conv3x3, .skipConnect, .conv3x3, .conv1x1])
        XCTAssertEqual(cell.architectureString, Rows201.best)
        XCTAssertEqual(NASBench201Cell(ops: [.none, .none, .none, .none, .none, .none]).architectureString,
                       "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        // Every cell: index ↔ ops ↔ string.
        var seen = Set<String>()
        for index in 0..<NASBench201Cell.cellCount {
            let cell = NASBench201Cell(index: index)
            XCTAssertEqual(cell.index, index)
            let text = cell.architectureString
            XCTAssertEqual(try NASBench201Cell(parsing: text), cell)
            seen.insert(text)
        }
        XCTAssertEqual(seen.count, 15_625)
        XCTAssertEqual(NASBench201Cell(index: 0).ops, Array(repeating: .none, count: 6))
        XCTAssertEqual(NASBench201Cell(index: 1).ops, [.none, .none, .none, .none, .none, .skipConnect])
    }

    func testMalformedStringsAreRejectedWithTheirReason() {
        let cases: [(String, String)] = [
            ("", "1 '+'-separated node groups"),
            ("|none~0|+|none~0|none~1|", "2 '+'-separated node groups"),
            ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "4 '+'-separated"),
            ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1's group does not start and end with '|'"),
            ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 lists 1 inputs, expected 2"),
            ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "input 2 of node 3 names node '2', expected 1"),
            ("|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|", "unknown op 'conv'"),
            ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "'none0' is not of the form op~node"),
            ("|none~00|+|none~0|none~1|+|none~0|none~1|none~2|", "names node '00', expected 0"),
            ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2| ", "node 3's group does not start"),
        ]
        for (text, reason) in cases {
            do {
                let cell = try NASBench201Cell(parsing: text)
                XCTFail("parsed '\(text)' as \(cell)")
            } catch {
                XCTAssertTrue(error.problem.contains(reason), "'\(text)': \(error.problem)")
            }
            XCTAssertNil(NASBench201Cell(architectureString: text))
        }
    }

    func testEncodingOfTheBestCell() throws {
        let cell = try NASBench201Cell(parsing: Rows201.best)
        let encoding = cell.graphEncoding
        XCTAssertEqual(encoding.nodeCount, 8)
        // input, the six edge ops (3x3, 3x3, 3x3, skip, 3x3, 1x1), output.
        XCTAssertEqual(encoding.ops, [1, 5, 5, 5, 3, 5, 4, 7])
        // Edge nodes: 1 = (0→1), 2 = (0→2), 3 = (1→2), 4 = (0→3), 5 = (1→3), 6 = (2→3).
        let expected: Set<[Int]> = [[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 6], [3, 6], [4, 7], [5, 7], [6, 7]]
        var found = Set<[Int]>()
        for i in 0..<8 { for j in 0..<8 where encoding.hasEdge(from: i, to: j) { found.insert([i, j]) } }
        XCTAssertEqual(found, expected)
        // `none` stays a node: only its op id changes, never the graph.
        let empty = NASBench201Cell(index: 0).graphEncoding
        XCTAssertEqual(empty.ops, [1, 2, 2, 2, 2, 2, 2, 7])
        XCTAssertEqual(empty.adjacency, encoding.adjacency)
        let comparator = ArchitectureComparator(configuration: NASBench201Space.comparatorConfiguration,
                                                generator: &generator)
        XCTAssertTrue(comparator.accepts(encoding) && comparator.accepts(empty))
        XCTAssertEqual(NASBench201Space.comparatorConfiguration,
                       ArchitectureComparator.Configuration(opCount: 8, maxNodes: 8, embeddingDimension: 128, layers: 4))
        XCTAssertFalse(ArchitectureComparator(configuration: .nasBench101, generator: &generator).accepts(encoding))
    }

    func testNodeMatrixMarksEdgesThatAreNotNone() throws {
        let cell = try NASBench201Cell(parsing: "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
        XCTAssertEqual(cell.nodeMatrix, [[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    }

    // MARK: Grammar

    private var generator = SeededGenerator(seed: 201)

    func testGrammarMakesSixOpDecisions() {
        let grammar = NASBench201Grammar()
        XCTAssertEqual(grammar.shape, ControllerShape(hiddenSize: 64, inputTables: [5], attentionKeyTable: 0, headOutputs: [5]))
        var prefix = [UInt16]()
        while let decision = grammar.decision(after: prefix) {
            XCTAssertEqual(decision, Decision(scorer: .head(0), optionCount: 5, tanhConstant: 1.5 / 2.5, feedsTable: 0))
            prefix.append(UInt16(prefix.count % 5))
        }
        XCTAssertEqual(prefix.count, 6)
        let controller = Controller(grammar: grammar, generator: &generator)
        XCTAssertTrue(controller.isValid([0, 1, 2, 3, 4, 0]))
        XCTAssertFalse(controller.isValid([0, 1, 2, 3, 4]))
        XCTAssertFalse(controller.isValid([0, 1, 2, 3, 4, 0, 1]))
        XCTAssertFalse(controller.isValid([0, 1, 2, 3, 5, 0]))
        XCTAssertNil(NASBench201Space.cell(forSequence: [0, 1, 2, 3, 4]))
        XCTAssertNil(NASBench201Space.cell(forSequence: [0, 1, 2, 3, 4, 0, 1]))
        XCTAssertNil(NASBench201Space.cell(forSequence: [0, 1, 2, 3, 5, 0]))
        XCTAssertNil(NASBench201Space.cell(forSequence: [0, 1, 2, 3, 256, 0]))
    }

    /// All 5⁶ sequences: each is valid for the controller and decodes to a distinct cell.
    static func allSequences() -> [[UInt16]] {
        (0..<15_625).map { index in
            var rest = index
            var sequence = [UInt16](repeating: 0, count: 6)
            for k in stride(from: 5, through: 0, by: -1) { sequence[k] = UInt16(rest % 5); rest /= 5 }
            return sequence
        }
    }

    func testEverySequenceDecodesToADistinctCell() {
        let controller = Controller(grammar: NASBench201Grammar(), generator: &generator)
        var cells = Set<NASBench201Cell>()
        for sequence in Self.allSequences() {
            XCTAssertTrue(controller.isValid(sequence))
            guard let cell = NASBench201Space.cell(forSequence: sequence) else { return XCTFail("\(sequence) decodes to nothing") }
            XCTAssertEqual(NASBench201Grammar.sequence(for: cell), sequence)
            cells.insert(cell)
        }
        XCTAssertEqual(cells.count, 15_625)
    }

    func testControllerAndComparatorRunOnTheSpace() {
        let configuration = ArchitectureComparator.Configuration(opCount: 8, maxNodes: 8, embeddingDimension: 8, layers: 2)
        var comparator = ArchitectureComparator(configuration: configuration, generator: &generator)
        let controller = Controller(grammar: NASBench201Grammar(), generator: &generator)
        var samples = [Controller.Sample]()
        for k in 0..<32 { samples.append(controller.sample(generator: &generator, uniform: k < 8)) }
        let cells = samples.map { NASBench201Space.cell(forSequence: $0.sequence)!.graphEncoding }
        XCTAssertTrue(cells.allSatisfy(comparator.accepts))
        let pairs = (0..<31).map { ($0, $0 + 1) }
        let p = comparator.probabilities(cells: cells, pairs: pairs)
        XCTAssertEqual(p.count, 31)
        XCTAssertTrue(p.allSatisfy { $0.isFinite && $0 > 0 && $0 < 1 })
        // One training step of each, so the backward passes see this grammar and encoding too.
        var gradient = [Float](repeating: 0, count: comparator.parameters.count)
        let (loss, _) = comparator.accumulateGradient(cells: cells, pairs: pairs, targets: pairs.map { Float($0.0 % 2) },
                                                      into: &gradient)
        XCTAssertTrue(loss.isFinite && gradient.allSatisfy(\.isFinite))
        for k in gradient.indices { comparator.parameters[k] -= 0.01 * gradient[k] }
        var policyGradient = [Float](repeating: 0, count: controller.parameters.count)
        let replay = controller.accumulatePolicyGradient(sequence: samples[10].sequence, advantage: 0.5,
                                                         entropyCoefficient: 0.01, into: &policyGradient)
        XCTAssertEqual(replay.logProbability, samples[10].logProbability, accuracy: 1e-4)
        XCTAssertTrue(policyGradient.allSatisfy(\.isFinite) && policyGradient.contains { $0 != 0 })
    }

    // MARK: The real tables

    private static let dataDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/data")
    private static let testPath = dataDirectory.appendingPathComponent("nasbench201-test.csv").path
    private static let validPath = dataDirectory.appendingPathComponent("nasbench201-cifar10-valid.csv").path

    private func realSpaces() throws -> (withValid: NASBench201Space, testOnly: NASBench201Space) {
        for path in [Self.testPath, Self.validPath] {
            try XCTSkipUnless(FileManager.default.fileExists(atPath: path), "no benchmark table at \(path)")
        }
        let started = Date()
        let withValid = try NASBench201Space.load(testTable: Self.testPath, validTable: Self.validPath, dataset: .cifar10)
        print("NASBench201Space: loaded both tables in \(String(format: "%.3f", Date().timeIntervalSince(started))) s")
        return (withValid, try NASBench201Space.load(testTable: Self.testPath, validTable: nil, dataset: .cifar10))
    }

    func testRealTables() throws {
        let (space, testOnly) = try realSpaces()
        XCTAssertEqual(space.cellCount, 15_625)
        XCTAssertEqual(space.name, "nasbench201-cifar10")
        XCTAssertEqual(space.describe(row: 0).hash,
                       "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")

        // Every row prints back to the file's own string.
        let lines = try String(contentsOfFile: Self.testPath, encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertEqual(lines.count, 15_625)
        for (row, line) in lines.enumerated() {
            XCTAssertEqual(space.describe(row: row).hash, String(line.split(separator: ",")[3]))
        }

        // Best cell per dataset: rank 1, the README's values.
        let expectedBest: [(NASBench201Space.Dataset, Float)] = [(.cifar10, 0.94373), (.cifar100, 0.73513), (.imagenet16, 0.47311)]
        for (dataset, value) in expectedBest {
            let s = NASBench201Space(table: space.table, dataset: dataset)
            let best = (0..<s.cellCount).max { s.testAccuracy(ofRow: $0) < s.testAccuracy(ofRow: $1) }!
            XCTAssertEqual(s.testAccuracy(ofRow: best), value, accuracy: 0.0001, "\(dataset)")
            XCTAssertEqual(s.rank(ofRow: best), 1)
            XCTAssertEqual(Set((0..<s.cellCount).map(s.rank)).count, 15_625)
            XCTAssertEqual(s.percentile(ofRow: best), 100.0 / 15_625)
            if dataset == .cifar10 {
                XCTAssertEqual(s.describe(row: best).hash, Rows201.best)
                XCTAssertEqual(s.describe(row: best).ops,
                               ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"])
                XCTAssertEqual(s.describe(row: best).matrix, [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
            }
            // Other datasets never label with cifar10-valid.
            XCTAssertEqual(s.labelsAreValidationAccuracy, dataset == .cifar10)
            if dataset != .cifar10 { XCTAssertTrue((0..<s.cellCount).allSatisfy { s.label(ofRow: $0) == s.testAccuracy(ofRow: $0) }) }
        }
        XCTAssertEqual(space.testAccuracy(ofRow: 0), 0.8586333, accuracy: 1e-6)

        // CIFAR-10 with the valid table: query validation, report test.
        XCTAssertTrue(space.labelsAreValidationAccuracy)
        XCTAssertEqual(space.label(ofRow: 0), 0.8198267, accuracy: 1e-6)
        XCTAssertEqual(space.label(ofRow: 1), 0.9076933, accuracy: 1e-6)
        let differing = (0..<space.cellCount).filter { space.label(ofRow: $0) != space.testAccuracy(ofRow: $0) }.count
        XCTAssertGreaterThan(differing, 15_000)
        XCTAssertFalse(testOnly.labelsAreValidationAccuracy)
        XCTAssertTrue((0..<testOnly.cellCount).allSatisfy { testOnly.label(ofRow: $0) == testOnly.testAccuracy(ofRow: $0) })

        // Every controller sequence finds its row, and together they cover the table.
        var rows = Set<Int>()
        for sequence in Self.allSequences() {
            guard let row = space.row(forSequence: sequence) else { return XCTFail("\(sequence) is not in the table") }
            XCTAssertEqual(NASBench201Grammar.sequence(for: space.table.cell(at: row)), sequence)
            rows.insert(row)
        }
        XCTAssertEqual(rows.count, 15_625)

        // Fingerprints tell datasets and label columns apart, and a reload gives the same one.
        let fingerprints = Set([space.tableFingerprint, testOnly.tableFingerprint,
                                NASBench201Space(table: space.table, dataset: .cifar100).tableFingerprint,
                                NASBench201Space(table: space.table, dataset: .imagenet16).tableFingerprint])
        XCTAssertEqual(fingerprints.count, 4)
        XCTAssertEqual(space.tableFingerprint.count, 64)
        let again = try NASBench201Space.load(testTable: Self.testPath, validTable: Self.validPath, dataset: .cifar10)
        XCTAssertEqual(again.tableFingerprint, space.tableFingerprint)

        // The split: seeded, disjoint, reproducible.
        let split = space.split(seed: 7, train: 100, validation: 50)
        XCTAssertEqual(split.train.count, 100)
        XCTAssertEqual(split.validation.count, 50)
        XCTAssertTrue(Set(split.train).isDisjoint(with: split.validation))
        XCTAssertEqual(space.split(seed: 7, train: 100, validation: 50).train, split.train)
        XCTAssertNotEqual(space.split(seed: 8, train: 100, validation: 50).train, split.train)
        var generator = SeededGenerator(seed: 7)
        XCTAssertEqual(split.train, Array(generator.permutation(15_625)[0..<100]))
    }

    // MARK: Small files and errors

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("nb201-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    private func loadError(test: String, valid: String? = nil, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let table = try NASBench201Table.load(testTable: test, validTable: valid)
            XCTFail("loaded \(table.count) rows from a broken file", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error is TableError, "\(error)", file: file, line: line)
            return String(describing: error)
        }
    }

    func testSmallTablesLoadWithCRLFAndQuotes() throws {
        let test = try write("test.csv", [Rows201.testHeader, Rows201.test0, Rows201.test1].joined(separator: "\n") + "\n")
        let valid = try write("valid.csv", [Rows201.validHeader, Rows201.valid1, Rows201.valid0].joined(separator: "\r\n"))
        let space = try NASBench201Space.load(testTable: test, validTable: valid, dataset: .cifar10)
        XCTAssertEqual(space.cellCount, 2)
        XCTAssertEqual((0..<2).map(space.rank), [2, 1])
        XCTAssertEqual(space.label(ofRow: 0), 0.8198267, accuracy: 1e-6)   // joined by string, not by line
        XCTAssertEqual(space.label(ofRow: 1), 0.9076933, accuracy: 1e-6)
        XCTAssertEqual(space.testAccuracy(ofRow: 1), 0.9366, accuracy: 1e-6)
        XCTAssertNil(space.row(forSequence: [0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(space.row(forSequence: NASBench201Grammar.sequence(for: NASBench201Cell(architectureString: Rows201.test1.split(separator: ",")[3])!)), 1)

        // Quoted fields (with a quote and a comma inside an ignored column), CRLF, a BOM: the same table.
        let quoted = "\u{FEFF}" + Rows201.testHeader + "\r\n"
            + "\"85.86333333333334\",52.913333294677734,26.6333332739936,\"|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|\",\"a \"\"quoted\"\", odd\nvalue\"\r\n"
            + Rows201.test1 + "\r\n"
        let requoted = try NASBench201Space.load(testTable: try write("quoted.csv", quoted), validTable: valid, dataset: .cifar10)
        XCTAssertEqual(requoted.tableFingerprint, space.tableFingerprint)

        // The test table alone labels with test accuracy.
        let alone = try NASBench201Space.load(testTable: test, validTable: nil, dataset: .cifar10)
        XCTAssertEqual(alone.label(ofRow: 0), alone.testAccuracy(ofRow: 0))
        XCTAssertNotEqual(alone.tableFingerprint, space.tableFingerprint)
    }

    func testRowErrorsNameTheFileLineAndProblem() throws {
        func testTable(_ rows: [String], header: String = Rows201.testHeader) throws -> String {
            try write("t\(UUID().uuidString).csv", ([header] + rows).joined(separator: "\n") + "\n")
        }
        let corruptAccuracy = Rows201.test1.replacingOccurrences(of: "93.66000000000001", with: "9x.66")
        var path = try testTable([Rows201.test0, corruptAccuracy])
        var message = loadError(test: path)
        XCTAssertTrue(message.hasPrefix(path + ": line 3: CIFAR10TestAccuracy200Epochs '9x.66' is not a percentage"), message)

        for (bad, problem) in [("101.5", "'101.5' is not a percentage in [0, 100]"), ("-3", "'-3' is not"),
                               ("nan", "'nan' is not"), ("", "'' is not")] {
            path = try testTable([Rows201.test0.replacingOccurrences(of: "52.913333294677734", with: bad)])
            message = loadError(test: path)
            XCTAssertTrue(message.contains("line 2: CIFAR100TestAccuracy200Epochs \(problem)"), message)
        }

        path = try testTable([Rows201.test0, Rows201.test1.replacingOccurrences(of: "avg_pool_3x3~1", with: "max_pool_3x3~1")])
        message = loadError(test: path)
        XCTAssertTrue(message.contains("line 3: ArchitectureString: '|nor_conv_3x3~0|+|nor_conv_3x3~0|max_pool_3x3~1|"), message)
        XCTAssertTrue(message.hasSuffix("unknown op 'max_pool_3x3'"), message)

        path = try testTable([Rows201.test0, "1,2,3"])
        XCTAssertTrue(loadError(test: path).hasSuffix("line 3: has 3 columns, expected 5 as in the header"))

        path = try testTable([Rows201.test0, "", Rows201.test1])
        XCTAssertTrue(loadError(test: path).hasSuffix("line 3: the line is empty"))

        path = try testTable([Rows201.test1, Rows201.test0, Rows201.test1])
        XCTAssertTrue(loadError(test: path).hasSuffix("line 4: architecture \(Rows201.test1.split(separator: ",")[3]) repeats the one on line 2"))

        path = try testTable([Rows201.test0], header: Rows201.testHeader.replacingOccurrences(of: "ArchitectureString", with: "arch"))
        XCTAssertTrue(loadError(test: path).hasSuffix("line 1: the header has no column 'ArchitectureString'"))

        path = try testTable([])
        XCTAssertEqual(loadError(test: path), path + ": the table has no rows")

        path = try write("unclosed.csv", Rows201.testHeader + "\n" + Rows201.test0 + "\n\"93.66,1,2,x,y\n")
        XCTAssertTrue(loadError(test: path).hasSuffix("line 3: a quoted field is never closed"))

        message = loadError(test: directory.appendingPathComponent("absent.csv").path)
        XCTAssertTrue(message.hasSuffix("absent.csv: cannot read the file"), message)

        // The join: every test cell must be in the validation table, once.
        let test = try testTable([Rows201.test0, Rows201.test1])
        var valid = try write("v1.csv", [Rows201.validHeader, Rows201.valid0].joined(separator: "\n"))
        message = loadError(test: test, valid: valid)
        XCTAssertEqual(message, test + ": line 3: architecture \(Rows201.test1.split(separator: ",")[3]) is not in the validation table \(valid)")
        valid = try write("v2.csv", [Rows201.validHeader, Rows201.valid0, Rows201.valid1, Rows201.valid0].joined(separator: "\n"))
        XCTAssertTrue(loadError(test: test, valid: valid).hasPrefix(valid + ": line 4: architecture"))
        valid = try write("v3.csv", [Rows201.validHeader, Rows201.valid0.replacingOccurrences(of: "81.98266666", with: "high")].joined(separator: "\n"))
        XCTAssertTrue(loadError(test: test, valid: valid).hasSuffix("line 2: valid-accuracy 'high' is not a percentage in [0, 100]"))
    }
}
