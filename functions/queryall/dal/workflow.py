"""Starting the query workflow (Step Functions)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.aws import client
from queryall.models.execution import ExecutionInput


class WorkflowStartFailed(RuntimeError):
    pass


class WorkflowStopFailed(RuntimeError):
    pass


class QueryWorkflow:
    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def start(self, execution: ExecutionInput) -> str:
        """Start the execution named after the job id; returns its ARN."""
        try:
            response = client("stepfunctions").start_execution(
                stateMachineArn=self.state_machine_arn,
                name=execution.job_id,
                input=execution.model_dump_json(),
            )
        except (ClientError, BotoCoreError) as error:
            raise WorkflowStartFailed(str(error)) from error
        return response["executionArn"]

    def execution_arn(self, job_id: str) -> str:
        # Executions are named after their job: arn:…:stateMachine:<machine> → arn:…:execution:<machine>:<job>.
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + job_id

    def stop(self, job_id: str) -> None:
        try:
            client("stepfunctions").stop_execution(
                executionArn=self.execution_arn(job_id), cause="Cancelled by the caller"
            )
        except (ClientError, BotoCoreError) as error:
            raise WorkflowStopFailed(str(error)) from error
