import Foundation

/// The NAS-Bench-201 (NATS-Bench topology) tables: test accuracy of every cell on CIFAR-10,
/// CIFAR-100 and ImageNet16-120, and optionally the "cifar10-valid" setting's validation accuracy,
/// all as fractions in [0, 1] (the files hold percent), so results read like NAS-Bench-101's.
public struct NASBench201Table: Sendable {
    public enum Dataset: String, CaseIterable, Sendable, Codable {
        case cifar10, cifar100, imagenet16
    }

    /// Cells in the order of the test table's rows.
    public let cells: [NASBench201Cell]
    /// Test accuracy per dataset (in `Dataset.allCases` order), then per row.
    private let testAccuracies: [[Float]]
    /// cifar10-valid validation accuracy per row, when a validation table was loaded.
    private let cifar10ValidAccuracies: [Float]?
    /// Row of each cell index (0..<15,625), −1 when the table lacks it.
    private let rowOfCellIndex: [Int32]

    public var count: Int { cells.count }
    public var hasValidationAccuracy: Bool { cifar10ValidAccuracies != nil }

    public func cell(at row: Int) -> NASBench201Cell { cells[row] }
    public func architectureString(at row: Int) -> String { cells[row].architectureString }

    public func testAccuracy(at row: Int, dataset: Dataset) -> Float {
        testAccuracies[Dataset.allCases.firstIndex(of: dataset)!][row]
    }

    /// All rows' test accuracy on `dataset`.
    public func testAccuracies(dataset: Dataset) -> [Float] {
        testAccuracies[Dataset.allCases.firstIndex(of: dataset)!]
    }

    /// Validation accuracy of the cifar10-valid setting, nil without a validation table.
    public func cifar10ValidAccuracy(at row: Int) -> Float? { cifar10ValidAccuracies?[row] }

    public func index(of cell: NASBench201Cell) -> Int? {
        let row = rowOfCellIndex[cell.index]
        return row < 0 ? nil : Int(row)
    }

    // MARK: Loading

    static let testColumns = ["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs",
                              "ImageNetTestAccuracy200Epochs"]
    static let testArchitectureColumn = "ArchitectureString"
    static let validArchitectureColumn = "arch_str"
    static let validAccuracyColumn = "valid-accuracy"

    /// Reads `nasbench201-test.csv` (columns found by name in its header: the three
    /// `…TestAccuracy200Epochs`, `ArchitectureString`) and, if given, the cifar10-valid table
    /// (`arch_str`, `valid-accuracy`), joined on the architecture string: every cell of the test
    /// table must be in it. Any bad row is a `TableError` naming the file and line.
    public static func load(testTable: String, validTable: String? = nil) throws -> NASBench201Table {
        let test = try NASBench201CSV(file: testTable)
        let testColumns = try test.columns(Self.testColumns + [Self.testArchitectureColumn])
        var cells = [NASBench201Cell]()
        var accuracies = [[Float]](repeating: [], count: Dataset.allCases.count)
        var rowOfCellIndex = [Int32](repeating: -1, count: NASBench201Cell.cellCount)
        var lineOfRow = [Int]()
        for record in test.records {
            let cell = try test.cell(record, column: testColumns[3])
            if rowOfCellIndex[cell.index] >= 0 {
                throw test.error(record, "architecture \(cell) repeats the one on line \(lineOfRow[Int(rowOfCellIndex[cell.index])])")
            }
            rowOfCellIndex[cell.index] = Int32(cells.count)
            for d in accuracies.indices { accuracies[d].append(try test.percent(record, column: testColumns[d])) }
            cells.append(cell)
            lineOfRow.append(record.line)
        }
        guard !cells.isEmpty else { throw TableError(file: testTable, location: nil, problem: "the table has no rows") }

        var validAccuracies: [Float]?
        if let validTable {
            let valid = try NASBench201CSV(file: validTable)
            let columns = try valid.columns([Self.validArchitectureColumn, Self.validAccuracyColumn])
            var byRow = [Float](repeating: .nan, count: cells.count)
            var validLine = [Int: Int]()
            for record in valid.records {
                let cell = try valid.cell(record, column: columns[0])
                if let earlier = validLine.updateValue(record.line, forKey: cell.index) {
                    throw valid.error(record, "architecture \(cell) repeats the one on line \(earlier)")
                }
                let accuracy = try valid.percent(record, column: columns[1])
                // Cells the test table lacks are of no use, but not an error.
                let row = rowOfCellIndex[cell.index]
                if row >= 0 { byRow[Int(row)] = accuracy }
            }
            if let missing = byRow.firstIndex(where: \.isNaN) {
                throw TableError(file: testTable, location: "line \(lineOfRow[missing])",
                                 problem: "architecture \(cells[missing]) is not in the validation table \(validTable)")
            }
            validAccuracies = byRow
        }
        return NASBench201Table(cells: cells, testAccuracies: accuracies, cifar10ValidAccuracies: validAccuracies,
                                rowOfCellIndex: rowOfCellIndex)
    }

    private init(cells: [NASBench201Cell], testAccuracies: [[Float]], cifar10ValidAccuracies: [Float]?,
                 rowOfCellIndex: [Int32]) {
        self.cells = cells
        self.testAccuracies = testAccuracies
        self.cifar10ValidAccuracies = cifar10ValidAccuracies
        self.rowOfCellIndex = rowOfCellIndex
    }
}

// MARK: - CSV

/// A small RFC 4180 reader for the NAS-Bench-201 tables: comma-separated, a header line,
/// LF or CRLF line ends, fields optionally in double quotes (`""` for a quote inside, line
/// breaks allowed). The shipped files use no quotes, CRLF in the cifar10-valid table and no
/// final line break there; all of that reads the same. The tables are small (a few MB), so
/// records become strings.
struct NASBench201CSV {
    struct Record {
        /// 1-based line the record starts on (the header is line 1).
        var line: Int
        var fields: [String]
    }

    let file: String
    let header: Record
    let records: [Record]

    init(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TableError(file: file, location: nil, problem: "cannot read the file")
        }
        var all = try Self.parse([UInt8](data), file: file)
        guard !all.isEmpty else { throw TableError(file: file, location: nil, problem: "the file is empty") }
        self.file = file
        header = all.removeFirst()
        records = all
        for record in records where record.fields.count != header.fields.count {
            if record.fields == [""] { throw error(record, "the line is empty") }
            throw error(record, "has \(record.fields.count) columns, expected \(header.fields.count) as in the header")
        }
    }

    func error(_ record: Record, _ problem: String) -> TableError {
        TableError(file: file, location: "line \(record.line)", problem: problem)
    }

    /// Positions of `names` in the header; each must appear exactly once.
    func columns(_ names: [String]) throws -> [Int] {
        try names.map { name in
            let positions = header.fields.indices.filter { header.fields[$0] == name }
            guard positions.count == 1 else {
                throw error(header, positions.isEmpty ? "the header has no column '\(name)'"
                                                      : "the header has column '\(name)' \(positions.count) times")
            }
            return positions[0]
        }
    }

    func cell(_ record: Record, column: Int) throws -> NASBench201Cell {
        do {
            return try NASBench201Cell(parsing: record.fields[column])
        } catch {
            throw self.error(record, "\(header.fields[column]): \(error.problem)")
        }
    }

    /// A plain decimal percentage in [0, 100], returned as a fraction.
    func percent(_ record: Record, column: Int) throws -> Float {
        let text = record.fields[column]
        let plain = text.utf8.first.map { $0 == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false
        guard plain, let value = Double(text), value.isFinite, value >= 0, value <= 100 else {
            let shown = text.count > 60 ? text.prefix(60) + "…" : Substring(text)
            throw error(record, "\(header.fields[column]) '\(shown)' is not a percentage in [0, 100]")
        }
        return Float(value / 100)
    }

    /// Splits `bytes` into records. A final line break does not start an empty record.
    static func parse(_ bytes: [UInt8], file: String) throws -> [Record] {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var records = [Record]()
        var fields = [String]()
        var field = [UInt8]()
        var line = 1
        var recordLine = 1
        var i = 0
        // A UTF-8 byte order mark is not part of the first column's name.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        let end = bytes.count
        func problem(_ text: String, at line: Int) -> TableError {
            TableError(file: file, location: "line \(line)", problem: text)
        }
        func string(_ field: ArraySlice<UInt8>) throws -> String {
            guard let text = String(validating: field, as: UTF8.self) else {
                throw problem("a field is not valid UTF-8", at: recordLine)
            }
            return text
        }
        while i < end {
            // One field starts at i.
            if bytes[i] == quote {
                let openedOn = line
                i += 1
                var closed = false
                while i < end {
                    let b = bytes[i]
                    if b == quote {
                        if i + 1 < end && bytes[i + 1] == quote {
                            field.append(quote)
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    if b == lf { line += 1 }
                    field.append(b)
                    i += 1
                }
                guard closed else { throw problem("a quoted field is never closed", at: openedOn) }
                if i < end && bytes[i] == cr && i + 1 < end && bytes[i + 1] == lf { i += 1 }
                guard i == end || bytes[i] == comma || bytes[i] == lf else {
                    throw problem("text follows a closing quote inside a field", at: line)
                }
                fields.append(try string(field[...]))
                field.removeAll(keepingCapacity: true)
            } else {
                let start = i
                while i < end && bytes[i] != comma && bytes[i] != lf {
                    if bytes[i] == quote { throw problem("a quote inside an unquoted field", at: line) }
                    i += 1
                }
                let stop = i > start && bytes[i - 1] == cr && (i == end || bytes[i] == lf) ? i - 1 : i
                fields.append(try string(bytes[start..<stop]))
            }
            if i < end && bytes[i] == comma {
                i += 1
                // A comma at the very end still ends a last, empty field.
                if i == end { fields.append("") }
                continue
            }
            // End of the record (a line break or the end of the file).
            records.append(Record(line: recordLine, fields: fields))
            fields.removeAll(keepingCapacity: true)
            if i < end {
                i += 1
                line += 1
                recordLine = line
            }
        }
        if !fields.isEmpty { records.append(Record(line: recordLine, fields: fields)) }
        return records
    }
}
