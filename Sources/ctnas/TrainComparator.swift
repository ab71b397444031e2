import Foundation
import Engine
import Coordinator
import Worker

enum TrainComparator {
    static let spec = CommandSpec(name: "train-comparator", summary: "Train the comparator (NAC) on the labelled cells and print its validation Kendall tau.", options: DataLocation.Choice.options + [
        .value("--seed", "N", "1", "seed of the split, initialisation and batches"),
        .value("--epochs", "E", "1000", "training epochs"),
        .value("--queries", "N", "423 for nasbench101, 100 for nasbench201", "labelled training cells"),
        .value("--top", "K", nil, "also score the whole table and print the mean test accuracy of the comparator's K favourites"),
        .value("--pairing", "KIND", "partner", "partner: each cell against one shuffled partner (original); all: every ordered pair in a batch"),
        .value("--node-widths", "KIND", "channels", "channels: ops scaled by their node's share of channels; uniform: ops only (the paper's NAC)"),
        .value("--lr", "RATE", "0.0002", "Adam learning rate"),
        .value("--threads", "N", "1", "threads computing gradient shards"),
        .value("--shards", "N", "8", "gradient shards per batch (results do not depend on --threads)"),
        .flag("--json", "print one JSON object instead of text"),
    ])

    static func run(_ args: ParsedArguments) throws -> Int32 {
        let choice = try DataLocation.Choice(args)
        let (space, _) = try choice.load()
        var options = SearchOptions.paper
        options.seed = UInt64(try args.int("--seed")!)
        options.comparatorEpochs = try args.int("--epochs", in: 1...1_000_000)!
        options.queries = try args.given("--queries") ? args.int("--queries", in: 2...max(2, space.cellCount - options.validationCells))! : choice.defaultQueries
        let top = try args.given("--top") ? args.int("--top", in: 1...space.cellCount) : nil
        options.shards = try args.int("--shards", in: 1...4096)!
        let threads = try args.int("--threads", in: 1...256)!
        guard let pairing = SearchOptions.Pairing(rawValue: args.string("--pairing")!) else {
            throw UsageError(message: "option --pairing expects partner or all")
        }
        options.comparatorPairing = pairing
        guard let widths = NodeWidths(rawValue: args.string("--node-widths")!) else {
            throw UsageError(message: "option --node-widths expects channels or uniform")
        }
        options.nodeWidths = widths
        options.comparatorLearningRate = Float(try args.double("--lr")!)
        let json = args.has("--json")
        let runner = DirectRunner(executor: JobExecutor(space: space), threads: threads)
        let search = Search(space: space, state: SearchState(space: space, options: options), runner: runner) { event in
            if !json, let tau = event["kendall_tau"]?.doubleValue, let epoch = event["epoch"]?.intValue {
                print("epoch \(epoch): loss \(String(format: "%.4f", event["loss"]?.doubleValue ?? .nan)), kendall tau \(String(format: "%.4f", tau))")
            }
        }
        let start = Date()
        while search.state.epoch < options.comparatorEpochs { _ = try search.step() }
        let seconds = Date().timeIntervalSince(start)
        let tau = search.state.lastTau
        var fields: [(String, JSON)] = [("kendall_tau", .number(tau)), ("seed", .int(Int(options.seed))), ("epochs", .int(options.comparatorEpochs)),
                                        ("queries", .int(options.queries)), ("seconds", .number(seconds))]
        if !json {
            print("validation kendall tau \(String(format: "%.4f", tau)) after \(options.comparatorEpochs) epochs (\(String(format: "%.1f", seconds)) s)")
        }
        if let top {
            // Every score is monotone in the cell's own half of the head, so any reference ranks the table the same.
            let ranking = try TableRanking(space: space, comparator: search.state.comparator, version: search.state.comparatorVersion,
                                           reference: search.bestLabelledRow, nodeWidths: options.nodeWidths, runner: runner)
            let favourites = ranking.top(top).map { space.testAccuracy(ofRow: $0.row) }
            let mean = Double(favourites.reduce(0, +)) / Double(favourites.count)
            fields += [("table_tau", .number(ranking.kendallTau)), ("top", .int(top)), ("top_mean_test_accuracy", .number(mean)),
                       ("top_best_test_accuracy", .number(Double(favourites.max()!))),
                       ("favourite_test_accuracy", .number(Double(favourites[0])))]
            if !json {
                print(String(format: "over the whole table: tau %.4f; the comparator's %d favourites average %.4f test accuracy (favourite %.4f, best of them %.4f)",
                             ranking.kendallTau, top, mean, favourites[0], favourites.max()!))
            }
        }
        if json { print(JSON.object(fields).serialized()) }
        return 0
    }
}
