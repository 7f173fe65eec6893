"""Run a Great Expectations 1.x checkpoint over a small DataFrame and write its result."""
import json
import sys

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

df = pd.DataFrame({"id": [1, 2, 3, 4], "status": ["placed", "shipped", "lost", "shipped"],
                   "amount": [10.0, 25.5, 7.25, None]})
context = gx.get_context(mode="ephemeral")
source = context.data_sources.add_pandas("shop")
asset = source.add_dataframe_asset("orders")
batch_def = asset.add_batch_definition_whole_dataframe("all")
suite = context.suites.add(gx.ExpectationSuite(name="orders_quality"))
suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="id"))
suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["placed", "shipped"]))
suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="amount", mostly=0.9))
suite.add_expectation(gxe.ExpectColumnMeanToBeBetween(column="amount", min_value=5, max_value=20))
suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=1000))
validation = context.validation_definitions.add(
    gx.ValidationDefinition(name="orders_nightly", data=batch_def, suite=suite))
checkpoint = context.checkpoints.add(gx.Checkpoint(name="nightly", validation_definitions=[validation],
                                                   result_format={"result_format": "SUMMARY"}))
result = checkpoint.run(batch_parameters={"dataframe": df})
with open(sys.argv[1], "w") as out:  # what `checkpoint.run(...).describe()` prints
    out.write(result.describe() + "\n")
with open(sys.argv[2], "w") as out:  # the suite validation result, as GX stores it
    (validation_result,) = result.run_results.values()
    json.dump(validation_result.to_json_dict(), out, indent=2)
    out.write("\n")
