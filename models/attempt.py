from peewee import BooleanField, DateTimeField, DoubleField, ForeignKeyField

from models.base import BaseModel, number, rfc3339, utcnow
from models.enrollment import Enrollment


class AssessmentAttempt(BaseModel):
    enrollment = ForeignKeyField(
        Enrollment, column_name="enrollment_uuid", backref="attempts", on_delete="CASCADE"
    )
    score = DoubleField()
    passed = BooleanField()
    submitted_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("enrollment", "submitted_at", "uuid"), False),)

    def as_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "score": number(self.score),
            "passed": self.passed,
            "submitted_at": rfc3339(self.submitted_at),
        }
